// What both pages share: the node's identity, read tokens signed here (the key never leaves
// this page), and calls to the node's HTTP/JSON API (docs/http.md). No network beyond the node.
import * as ed from './noble-ed25519-2.3.0.js';

const utf8 = new TextEncoder();
const READ_DOMAIN = 'portable-contribution-ledger/read/v2\n';

export function hexToBytes(hex) {
  const h = hex.trim().toLowerCase();
  if (!/^([0-9a-f]{2})*$/.test(h)) throw new Error('not hexadecimal');
  return Uint8Array.from(h.match(/../g) || [], (b) => parseInt(b, 16));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do { let b = Number(v & 0x7fn); v >>= 7n; if (v) b |= 0x80; out.push(b); } while (v);
  return Uint8Array.from(out);
}

// A length-delimited protobuf field, and a varint one.
const bytesField = (no, b) => concat(varint((no << 3) | 2), varint(b.length), b);
const varintField = (no, n) => concat(varint(no << 3), varint(n));

// A secret key as `ledger-client keygen` writes it: 64 hex digits of an ed25519 seed.
export function parseSeed(text) {
  const seed = hexToBytes(text);
  if (seed.length !== 32) throw new Error('a key is 64 hexadecimal digits');
  return seed;
}

let statusCache;
export async function nodeStatus() {
  statusCache ??= await call('/v1/status');
  return statusCache;
}

// A read token for one call (integration.md §6), as the x-read-token header carries it.
export async function readToken(seed, method, subject, nonce, issuedAt) {
  const status = await nodeStatus();
  nonce ??= crypto.getRandomValues(new Uint8Array(16));
  issuedAt ??= Math.floor(Date.now() / 1000);
  const message = concat(
    utf8.encode(READ_DOMAIN), hexToBytes(status.genesis_hash),
    utf8.encode(status.node_id), [0], utf8.encode(method), [0], utf8.encode(subject), [0],
    nonce, utf8.encode(String(issuedAt)));
  const signature = await ed.signAsync(message, seed);
  const publicKey = await ed.getPublicKeyAsync(seed);
  const token = concat(
    bytesField(1, publicKey), varintField(2, issuedAt), bytesField(3, signature),
    bytesField(4, nonce), bytesField(5, utf8.encode(method)), bytesField(6, utf8.encode(status.node_id)));
  return btoa(String.fromCharCode(...token));
}

// GET (or POST) a route; an error document becomes an Error with its message and code.
export async function call(path, token) {
  const response = await fetch(path, { headers: token ? { 'x-read-token': token } : {} });
  const body = await response.json();
  if (!response.ok) {
    const e = new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    e.code = body.error && body.error.code;
    throw e;
  }
  return body;
}

// Text in both languages the pages speak.
export const t = (en, zh) => `${en} · ${zh}`;

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : String(c));
  return node;
}

// The key: from the file picker or the text field; from the page's address after `#key=`
// only when given so (for a kiosk or a test), and then wiped from the address bar.
export async function keyFrom(fileInput, textInput) {
  if (fileInput.files && fileInput.files[0]) return parseSeed(await fileInput.files[0].text());
  return parseSeed(textInput.value);
}

export function fragmentParams() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  return params;
}
