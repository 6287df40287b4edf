// Mulberry32: the small seeded PRNG of the tests' and the benchmarks' data (test/helpers.ts,
// bench/bf16-accuracy.js), one implementation so that both draw the same sequences.
'use strict';

/** A function returning uniform numbers in [0, 1), seeded with the 32-bit integer `seed`. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

module.exports = { mulberry32 };
