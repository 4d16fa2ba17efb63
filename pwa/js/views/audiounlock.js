// Browsers keep a page's audio silent until its first tap or key press: hand every such gesture
// to `unlock` (ringer.js resumes a ringtone that could not start). Pointer up as well as down,
// since a touch only counts as a tap once the finger lifts.

/** @param {() => void} unlock */
export function unlockAudioOnTap(unlock) {
  for (const type of ["pointerdown", "pointerup", "keydown"]) {
    document.addEventListener(type, unlock, { capture: true, passive: true });
  }
}
