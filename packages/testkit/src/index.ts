/**
 * @fsyncd/testkit — what the tests and the bench share to make their inputs: a seeded PRNG, a
 * MessagePack writer independent of the one under test, and random changes to a real folder.
 * Not used by the product.
 */
export * from './prng.js'
export * from './msgpack.js'
export * from './churn.js'
