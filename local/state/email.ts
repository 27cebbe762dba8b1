/** What an email of the outbox is made of (an outbox message has these fields). */
export interface EmailMessage {
  id: string;
  topic: string;
  subject: string;
  body: string;
  createdAt: string;
  executionArn?: string;
}

/** An outbox message as an RFC 5322 email (UTF-8 plain text; the subject RFC 2047-encoded when needed). */
export function renderEmail(message: EmailMessage): string {
  const body = message.body.replace(/\r?\n/g, '\r\n');
  const lines = body.split('\r\n');
  // RFC 5322 limits a line to 998 octets; base64 keeps a body with longer lines valid.
  const tooLong = lines.some((line) => Buffer.byteLength(line, 'utf8') > 998);
  const ascii = /^[\x20-\x7e\t\r\n]*$/.test(body);
  const encoding = tooLong ? 'base64' : ascii ? '7bit' : '8bit';
  const topic = message.topic.toLowerCase().replace(/[^a-z0-9.-]+/g, '-') || 'topic';
  const headers = [
    'From: stepline <stepline@localhost>',
    `To: ${topic}@localhost`,
    `Subject: ${encodeHeaderText(message.subject)}`,
    `Date: ${new Date(message.createdAt).toUTCString().replace(/GMT$/, '+0000')}`,
    `Message-ID: <${message.id}@stepline.localhost>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${encoding}`,
  ];
  if (message.executionArn) headers.push(`X-Stepline-Execution: ${message.executionArn}`);
  const encodedBody = tooLong
    ? (Buffer.from(body, 'utf8')
        .toString('base64')
        .match(/.{1,76}/g)
        ?.join('\r\n') ?? '')
    : body;
  return `${headers.join('\r\n')}\r\n\r\n${encodedBody}\r\n`;
}

/**
 * A header value: as is when printable ASCII, else RFC 2047 encoded words (`=?UTF-8?B?…?=`), each at most
 * 75 characters and holding whole characters, folded onto continuation lines.
 */
function encodeHeaderText(value: string): string {
  const flat = value.replace(/[\r\n]+/g, ' ');
  if (/^[\x20-\x7e]*$/.test(flat)) return flat;
  // 42 bytes encode to 56 base64 characters: "Subject: " plus one word stays within 78.
  const words: string[] = [];
  let chunk = '';
  for (const character of flat) {
    if (Buffer.byteLength(chunk + character, 'utf8') > 42) {
      words.push(chunk);
      chunk = '';
    }
    chunk += character;
  }
  if (chunk !== '') words.push(chunk);
  return words.map((word) => `=?UTF-8?B?${Buffer.from(word, 'utf8').toString('base64')}?=`).join('\r\n ');
}
