// After sign-in, a clear offer in the banner to let calls ring while Parley is closed: asked once
// per device, answered with a toast. Subscribing is push.js's job.

import { enablePush, pushState } from "../push.js";
import { h } from "./dom.js";
import { toast } from "./toast.js";

const ASKED = "parley.push-asked";

/** @param {HTMLElement} banner */
export async function offerNotifications(banner) {
  if ((await pushState().catch(() => "unsupported")) !== "prompt" || localStorage.getItem(ASKED)) return;
  const answered = () => {
    banner.hidden = true;
    localStorage.setItem(ASKED, "1");
  };
  const allow = async () => {
    answered();
    const on = await enablePush().catch(() => false);
    toast(on ? "Calls will ring on this device." : "Notifications stay off; you can allow them in the browser settings.");
  };
  banner.replaceChildren(
    "Get calls even when Parley is closed. ",
    h("button", { type: "button", onclick: allow }, "Allow notifications"),
    h("button", { type: "button", onclick: answered }, "Not now"),
  );
  banner.hidden = false;
}
