// Drives the real Croct JavaScript SDK (@croct/sdk) in a jsdom page against a running
// receiver, as a site would: tracking enabled (tab and page events on its own), a goal,
// a lead, then the user signing in. Prints what happened as one JSON line.
//
//   RECEIVER_CROCT_BASE=http://127.0.0.1:8000/hooks/croct RECEIVER_CROCT_APP_ID=<uuid> node track.mjs
import { JSDOM } from "jsdom";

const base = process.env.RECEIVER_CROCT_BASE;
const appId = process.env.RECEIVER_CROCT_APP_ID;
if (!base || !appId) {
  console.error("set RECEIVER_CROCT_BASE and RECEIVER_CROCT_APP_ID");
  process.exit(2);
}

const dom = new JSDOM("<!doctype html><html><head><title>Running shoes</title></head><body></body></html>", {
  url: "https://shop.example/products/42?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
  referrer: "https://search.example/?q=shoes",
  pretendToBeVisual: true,
});
// The SDK is written for a browser: it reads window, document, storage and the page's
// location from the globals. Node's own fetch stays (jsdom has none), as in a browser.
const { window } = dom;
for (const name of ["window", "document", "localStorage", "sessionStorage", "location", "history", "navigator"]) {
  Object.defineProperty(globalThis, name, { value: name === "window" ? window : window[name], configurable: true });
}

const logged = { warn: [], error: [] };
const logger = {
  debug() {},
  info() {},
  warn: (message) => logged.warn.push(String(message)),
  error: (message) => logged.error.push(String(message)),
};

const { SdkFacade } = await import("@croct/sdk/facade");
const sdk = SdkFacade.init({ appId, baseEndpointUrl: base, track: true, logger });

await sdk.tracker.track("goalCompleted", { goalId: "newsletter-sign-up", value: 10, currency: "USD" });
await sdk.tracker.track("leadGenerated", {
  leadId: "lead-7",
  lead: { email: "  Ana.SDK@Example.com ", firstName: "Ana", lastName: "Lima" },
});
sdk.identify("sdk-user-42"); // a userSignedIn event, with the user in X-Token from now on
await sdk.tracker.track("productViewed", {
  product: { productId: "42", name: "Running shoes", displayPrice: 99.9, sku: "RS-42" },
});
await sdk.tracker.flushed;
const cid = await sdk.cidAssigner.assignCid();
await sdk.close();
console.log(JSON.stringify({ cid, warnings: logged.warn, errors: logged.error }));
