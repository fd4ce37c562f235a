export type { Tokenizer, TokenizerJSON } from './tokenizer.js';
export { ByteTokenizer, BYTE_SPECIALS, tokenizerFromJSON } from './byteTokenizer.js';
