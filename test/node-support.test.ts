import { NODE_END_OF_LIFE, nodeEndOfLifeNotice, SUPPORTED_NODE_LINES } from '../lib/node-support';

const at = (date: string) => Date.parse(`${date}T12:00:00Z`);

test('a release line past its end of life gets one notice naming it, its end date and what is supported', () => {
  const notice = nodeEndOfLifeNotice('20.20.2', at('2026-12-01'));
  expect(notice).toBe(
    'Node.js 20.20.2 is past its end of life (2026-04-30) and gets no security fixes; ' +
      'fleetscore supports Node 22 and 24 LTS (docs/operations.md, Node.js versions)',
  );
});

test('a line is supported until the day of its end of life', () => {
  expect(nodeEndOfLifeNotice('20.19.0', at('2026-04-29'))).toBeUndefined();
  expect(nodeEndOfLifeNotice('20.19.0', Date.parse('2026-04-30T00:00:00Z'))).toMatch(/past its end of life/);
});

test('the supported LTS lines get no notice while they are maintained', () => {
  for (const line of SUPPORTED_NODE_LINES) {
    expect(nodeEndOfLifeNotice(`${line}.0.0`, at('2026-12-01'))).toBeUndefined();
    expect(Date.parse(NODE_END_OF_LIFE[line]!)).toBeGreaterThan(at('2026-12-01'));
  }
});

test('odd (non-LTS) lines end early; lines older than the table are past end of life; newer ones are not', () => {
  expect(nodeEndOfLifeNotice('23.11.0', at('2026-12-01'))).toMatch(/\(2025-06-01\)/);
  expect(nodeEndOfLifeNotice('16.20.2', at('2026-12-01'))).toBe(
    'Node.js 16.20.2 is past its end of life and gets no security fixes; ' +
      'fleetscore supports Node 22 and 24 LTS (docs/operations.md, Node.js versions)',
  );
  expect(nodeEndOfLifeNotice('30.1.0', at('2026-12-01'))).toBeUndefined();
});
