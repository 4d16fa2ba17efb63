// The call screen's Speaker select: which audio output plays the other person (setSinkId), kept
// for the next call with the microphone and camera. Hidden, not disabled, where the browser cannot
// choose (no setSinkId) or lists fewer than two speakers (nothing to choose between).

import { speakers } from "../media.js";
import { h } from "./dom.js";

/**
 * Build the Speaker control and keep it in step with the calls; the call screen places it.
 * @param {import("../call.js").CallManager} calls
 * @param {HTMLMediaElement[]} outputs the elements that play the other side
 * @param {(choice: import("../media.js").DeviceChoice) => void} choose remember a choice
 * @returns {HTMLElement}
 */
export function mountSpeaker(calls, outputs, choose) {
  const select = /** @type {HTMLSelectElement} */ (h("select", { id: "speaker" }));
  const control = h(
    "div",
    { class: "speaker-choice", hidden: true },
    h("label", { for: "speaker" }, "Speaker"),
    select,
  );
  /** @type {MediaStream|null} the stream the list was last read with (labels need permission) */
  let listedWith = null;

  const wanted = () => calls.devices.audioOutputId || "";

  /** Play the other side on the chosen speaker, or the default one when it has gone. */
  const apply = async () => {
    const id = wanted();
    try {
      await Promise.all(outputs.map((el) => (el.sinkId === id ? null : el.setSinkId(id))));
    } catch {
      // Unplugged since it was chosen: the default plays, and the choice returns with the device.
      await Promise.all(outputs.map((el) => (el.sinkId === "" ? null : el.setSinkId("").catch(() => {}))));
      select.value = "";
    }
  };

  const refresh = async () => {
    const list = await speakers().catch(() => []);
    const id = wanted();
    select.replaceChildren(
      h("option", { value: "" }, "Default speaker"),
      ...list.map((d, i) => h("option", { value: d.deviceId, selected: d.deviceId === id }, d.label || `Speaker ${i + 1}`)),
    );
    control.hidden = list.length === 0;
  };

  select.addEventListener("change", async () => {
    const id = select.value;
    choose({ audioOutputId: id || undefined });
    // Firefox routes to a speaker only while the page may see the microphone, or once the person
    // picked it through selectAudioOutput(): ask for it now, in the tap, so it stays allowed.
    if (id && navigator.mediaDevices && navigator.mediaDevices.selectAudioOutput) {
      await navigator.mediaDevices.selectAudioOutput({ deviceId: id }).catch(() => {});
    }
    apply();
  });
  calls.addEventListener("call", () => {
    listedWith = null;
    refresh();
    apply();
  });
  // Device names come once the microphone is allowed, so read the list again when capture starts;
  // Firefox lets a new page route to a speaker only from then, so apply the choice again too.
  calls.addEventListener("change", () => {
    const stream = calls.call && calls.call.localStream;
    if (stream && stream !== listedWith) {
      listedWith = stream;
      refresh().then(apply);
    }
  });
  // A headset plugged in or out during a call.
  if (navigator.mediaDevices) navigator.mediaDevices.addEventListener("devicechange", () => calls.call && refresh().then(apply));
  return control;
}
