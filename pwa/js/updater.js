// Updater: the service worker's registration, the checks for a new version of Parley and the
// handshake that moves the page onto it. No DOM: views/update.js renders the offer.
//
// The server stamps sw.js with a hash of every file of the app (backend/web.py), so any deploy that
// changes the app changes the worker: the browser installs it next to the running one, where it
// waits until the person taps Update; then it takes over and the page reloads into the new code.

const CHECK_EVERY = 60 * 60 * 1000;

export class Updater extends EventTarget {
  /** @param {{busy?: () => boolean, url?: string}} [options] busy: true while a reload must wait (a call) */
  constructor({ busy = () => false, url = "/sw.js" } = {}) {
    super();
    this.busy = busy;
    this.url = url;
    /** @type {ServiceWorkerRegistration|null} */
    this.registration = null;
    /** @type {ServiceWorker|null} a new version, installed and waiting for the person's go */
    this.waiting = null;
    /** True when the server speaks a newer protocol than this code (SignalingClient "outdated"). */
    this.outdated = false;
    this.applying = false;
    this.reloadPending = false;
    this.reloading = false;
  }

  /** Whether to offer the update now: one is there, and no call would be cut by the reload. */
  get offering() {
    return (Boolean(this.waiting) || this.outdated) && !this.busy();
  }

  start() {
    if (!("serviceWorker" in navigator)) return;
    const sw = navigator.serviceWorker;
    let controller = sw.controller;
    sw.addEventListener("controllerchange", () => {
      // The first install only starts controlling the page; a worker replacing another is an
      // update (tapped here or in another tab of Parley): reload into its code.
      const replaced = controller !== null;
      controller = sw.controller;
      if (replaced || this.applying) this.reload();
    });
    sw.register(this.url, { scope: "/" })
      .then((registration) => {
        this.registration = registration;
        if (registration.waiting && sw.controller) this.found(registration.waiting);
        if (registration.installing) this.track(registration.installing);
        registration.addEventListener("updatefound", () => this.track(registration.installing));
        this.check();
      })
      .catch(() => {});
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.check();
    });
    setInterval(() => this.check(), CHECK_EVERY);
  }

  /** Ask the server whether sw.js changed; a new one installs and then waits (found()). */
  check() {
    if (this.registration) this.registration.update().catch(() => {});
  }

  /** The server speaks a newer protocol: this code must update before it talks on. */
  markOutdated() {
    this.outdated = true;
    this.check();
    this.changed();
  }

  /** Say whether the offer changed (a call started or ended, an update arrived). */
  changed() {
    if (this.reloadPending && !this.busy()) this.reload();
    this.dispatchEvent(new Event("change"));
  }

  /** The person tapped Update: activate the waiting worker (controllerchange then reloads). */
  async apply() {
    if (this.busy() || this.applying) return;
    this.applying = true;
    this.changed();
    const registration = this.registration;
    if (registration && !registration.waiting) {
      await registration.update().catch(() => {});
      await settled(registration.installing);
    }
    const worker = registration && registration.waiting;
    if (worker) worker.postMessage({ type: "skip-waiting" });
    else this.reload(); // no worker to hand over to (first visit, or none): the network has the code
  }

  /** @param {ServiceWorker|null} worker */
  track(worker) {
    if (!worker) return;
    worker.addEventListener("statechange", () => {
      if (worker.state === "installed" && navigator.serviceWorker.controller) this.found(worker);
    });
  }

  /** @param {ServiceWorker} worker */
  found(worker) {
    this.waiting = worker;
    this.changed();
  }

  reload() {
    // Never in the middle of a call: reload once it has ended (changed() runs then).
    if (this.busy()) {
      this.reloadPending = true;
      return;
    }
    if (this.reloading) return;
    this.reloading = true;
    location.reload();
  }
}

/** Resolve once `worker` (if any) has finished installing, one way or the other. @param {ServiceWorker|null} worker */
function settled(worker) {
  return new Promise((resolve) => {
    if (!worker || worker.state !== "installing") return resolve(undefined);
    worker.addEventListener("statechange", () => worker.state !== "installing" && resolve(undefined));
  });
}
