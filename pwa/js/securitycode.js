// The security code of a call: four emoji (and their names) from both sides' DTLS certificate
// fingerprints, so two people can read them to each other and know no one sits in the middle.
// Pure: no DOM, no peer connection; backend/peer/securitycode.py is the same derivation in Python
// and docs/protocol.md ("Security code") describes it.

/** @typedef {{emoji: string[], words: string[], text: string}} SecurityCode */

const VERSION = "parley-security-code-v1";
const SYMBOLS = 4; // 6 bits each: 24 bits of the hash

/**
 * 64 emoji with their names, index = 6-bit value: Matrix's SAS emoji table (spec, "SAS method:
 * emoji"), chosen to be told apart at a glance and named alike in any language.
 * @type {ReadonlyArray<readonly [string, string]>}
 */
export const EMOJI = Object.freeze([
  ["🐶", "Dog"], ["🐱", "Cat"], ["🦁", "Lion"], ["🐎", "Horse"],
  ["🦄", "Unicorn"], ["🐷", "Pig"], ["🐘", "Elephant"], ["🐰", "Rabbit"],
  ["🐼", "Panda"], ["🐓", "Rooster"], ["🐧", "Penguin"], ["🐢", "Turtle"],
  ["🐟", "Fish"], ["🐙", "Octopus"], ["🦋", "Butterfly"], ["🌷", "Flower"],
  ["🌳", "Tree"], ["🌵", "Cactus"], ["🍄", "Mushroom"], ["🌏", "Globe"],
  ["🌙", "Moon"], ["☁️", "Cloud"], ["🔥", "Fire"], ["🍌", "Banana"],
  ["🍎", "Apple"], ["🍓", "Strawberry"], ["🌽", "Corn"], ["🍕", "Pizza"],
  ["🎂", "Cake"], ["❤️", "Heart"], ["😀", "Smiley"], ["🤖", "Robot"],
  ["🎩", "Hat"], ["👓", "Glasses"], ["🔧", "Spanner"], ["🎅", "Santa"],
  ["👍", "Thumbs up"], ["☂️", "Umbrella"], ["⌛", "Hourglass"], ["⏰", "Clock"],
  ["🎁", "Gift"], ["💡", "Light bulb"], ["📕", "Book"], ["✏️", "Pencil"],
  ["📎", "Paperclip"], ["✂️", "Scissors"], ["🔒", "Lock"], ["🔑", "Key"],
  ["🔨", "Hammer"], ["☎️", "Telephone"], ["🏁", "Flag"], ["🚂", "Train"],
  ["🚲", "Bicycle"], ["✈️", "Aeroplane"], ["🚀", "Rocket"], ["🏆", "Trophy"],
  ["⚽", "Ball"], ["🎸", "Guitar"], ["🎺", "Trumpet"], ["🔔", "Bell"],
  ["⚓", "Anchor"], ["🎧", "Headphones"], ["📁", "Folder"], ["📌", "Pin"],
].map((pair) => Object.freeze(pair)));

const FINGERPRINT_RE = /^a=fingerprint:[ \t]*(\S+)[ \t]+([0-9A-Fa-f:]+)[ \t]*$/gm;

/**
 * One side's fingerprints, normalised ("sha-256 AB:CD:…"), without repeats, sorted, comma-joined.
 * Session- and media-level lines count alike. Empty when the description has none.
 * @param {string} sdp
 */
export function fingerprints(sdp) {
  const found = new Set();
  for (const match of sdp.replace(/\r/g, "").matchAll(FINGERPRINT_RE)) {
    found.add(`${match[1].toLowerCase()} ${match[2].toUpperCase()}`);
  }
  return [...found].sort().join(",");
}

/**
 * The code both sides of a call compute alike from its two descriptions, in either order;
 * null when either has no fingerprint (nothing to vouch for).
 * @param {string} localSdp @param {string} remoteSdp
 * @returns {Promise<SecurityCode|null>}
 */
export async function securityCode(localSdp, remoteSdp) {
  const sides = [fingerprints(localSdp), fingerprints(remoteSdp)];
  if (!sides[0] || !sides[1]) return null;
  sides.sort();
  const input = new TextEncoder().encode([VERSION, ...sides].join("\n"));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  const bits = (digest[0] << 16) | (digest[1] << 8) | digest[2];
  const picked = [];
  for (let i = SYMBOLS - 1; i >= 0; i--) picked.push(EMOJI[(bits >> (6 * i)) & 63]);
  const emoji = picked.map(([e]) => e);
  const words = picked.map(([, w]) => w);
  return { emoji, words, text: words.join(" · ") };
}
