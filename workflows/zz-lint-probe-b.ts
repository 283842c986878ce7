import { x } from './zz-lint-probe';
export const a = () => x;
