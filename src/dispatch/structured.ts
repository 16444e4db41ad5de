/**
 * Parses an answer given under `response_format: "json"` (original §4.8), tolerating a surrounding markdown fence.
 * Returns undefined when the text is not JSON. Unlike the original, an answer of `null` parses to `null`, which
 * the caller can tell apart from a failure.
 */
export function parseStructuredResponse(text: string): unknown {
  if (typeof text !== 'string' || !text) return undefined;
  let candidate = text.trim();
  if (candidate.startsWith('```')) {
    const lines = candidate.split(/\r\n|\r|\n/).slice(1);
    if (lines.length > 0 && lines[lines.length - 1]!.trim().startsWith('```')) lines.pop();
    candidate = lines.join('\n').trim();
  }
  try {
    return JSON.parse(candidate) as unknown;
  } catch {
    return undefined;
  }
}
