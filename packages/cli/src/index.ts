export { Exit } from "./exit-codes.js"
