/** The scikit-learn fixtures (test/fixtures/sklearn, scripts/make-sklearn-fixtures.py) and their cases. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A fixture's input rows with scikit-learn's (or numpy's) score and predict label (-1 anomaly, 1 normal) per row. */
export interface SklearnCases {
  features: string[];
  rows: number[][];
  decisionFunction: number[];
  predict: number[];
}

const FIXTURES = join(__dirname, '..', 'fixtures', 'sklearn');

/** A fixture file's bytes, e.g. `sklearnFixture('ocsvm', 'model.onnx')`. */
export const sklearnFixture = (...path: string[]): Buffer => readFileSync(join(FIXTURES, ...path));

/** A fixture's cases.json. */
export const sklearnCases = (name: string): SklearnCases =>
  JSON.parse(sklearnFixture(name, 'cases.json').toString('utf8')) as SklearnCases;
