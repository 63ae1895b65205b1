/**
 * @fsyncd/testkit — what the tests and the bench share to make their inputs: a seeded PRNG and a
 * MessagePack writer independent of the one under test. Not used by the product.
 */
export * from './prng.js'
export * from './msgpack.js'
