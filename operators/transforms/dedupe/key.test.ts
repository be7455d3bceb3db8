/**
 * Dedupe keys are stored (checkpoints, Redis): the same record must give the same key from one version to the
 * next, or a restart after an upgrade would let duplicates through. These are keys earlier versions made.
 */
import { describe, expect, it } from 'vitest';
import { keyFunction } from './key.ts';

describe('dedupe keys', () => {
  it('are the keys earlier versions stored, for one field, several, missing ones and the whole record', () => {
    expect(keyFunction(['request_id'])({ request_id: 'req-1' })).toBe('oC9YPesVa8riUfysffHgZQcMQQ0');
    const nested = { client_ip: '203.0.113.9', path: '/x', status: 200, a: { b: [1, { z: 2, y: null }] } };
    expect(keyFunction(['client_ip', 'path', 'status', 'a.b'])(nested)).toBe('tzKOyGLPOjUydVGwnQMuNckh0/Y');
    expect(keyFunction(['missing', 'n'])({ n: 5n })).toBe('20d7KCRTdKnhva05h/6r1rNnUCQ');
    expect(keyFunction(undefined)({ b: 1, a: 'x' })).toBe('9onEVqQC0ToBAx8gEk4e/EI5fp8');
  });
});
