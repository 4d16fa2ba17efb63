// Offer to install Parley: the browser's own install prompt behind the bar's Install button, or on
// an iPhone or iPad (no such prompt) a one-time hint in the banner.

/** @param {HTMLElement} button @param {HTMLElement} banner */
export function mountInstall(button, banner) {
  /** @type {any} */
  let installPrompt = null;
  window.addEventListener("beforeinstallprompt", (e) => {
    e.preventDefault();
    installPrompt = e;
    button.hidden = false;
  });
  button.addEventListener("click", async () => {
    if (!installPrompt) return;
    installPrompt.prompt();
    await installPrompt.userChoice.catch(() => null);
    installPrompt = null;
    button.hidden = true;
  });
  const isIos = /iphone|ipad|ipod/i.test(navigator.userAgent);
  const standalone = window.matchMedia("(display-mode: standalone)").matches || /** @type {any} */ (navigator).standalone;
  if (isIos && !standalone && !localStorage.getItem("parley.ios-hint")) {
    banner.textContent = "Install Parley: tap Share, then “Add to Home Screen”.";
    banner.hidden = false;
    localStorage.setItem("parley.ios-hint", "1");
  }
}
