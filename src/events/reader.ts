/**
 * Streaming JSON Lines: a trace of millions of lines is read in 1 MiB chunks and handed on in batches of whole
 * lines, never held whole in memory. A last line without its newline (a truncated file) is still delivered, so the
 * decoder can report it instead of it silently vanishing.
 */
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

export async function* readLineBatches(path: string, chunkSize = 1 << 20): AsyncGenerator<string[], void, void> {
  const dec = new StringDecoder('utf8');
  let carry = '';
  for await (const chunk of createReadStream(path, { highWaterMark: chunkSize })) {
    const text = carry + dec.write(chunk as Buffer);
    const lines = text.split('\n');
    carry = lines.pop()!;
    yield lines;
  }
  const rest = carry + dec.end();
  if (rest.length > 0) yield [rest];
}

/** The same split for text already in memory (tests, stdin). */
export function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}
