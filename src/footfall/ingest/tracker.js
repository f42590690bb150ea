/* footfall tracker: sends one visit per page load to the footfall server.
 * <script async src="https://footfall.example/tracker.js" data-site="shop"
 *   data-geolocation="true" data-endpoint="https://..."></script>
 * data-site defaults to "default", data-geolocation is opt-in, and data-endpoint
 * defaults to /api/events on the origin that served this script. */
(function () {
  "use strict";

  // currentScript is set only while this script first runs, so read it now.
  var script = document.currentScript;
  // NOTE: loaded as a module or inline, the tracker has no <script src> element to
  // read the endpoint and site from, so it sends nothing.
  if (!script || !script.src) return;

  var endpoint = script.getAttribute("data-endpoint") || new URL("/api/events", script.src).href;
  var GEOLOCATION_TIMEOUT_MS = 5000;
  var sent = false;

  // Returns a random (version 4) UUID.
  function createEventId() {
    // randomUUID exists only in secure contexts (HTTPS and localhost).
    if (crypto.randomUUID) return crypto.randomUUID();
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    var hex = Array.prototype.map.call(bytes, function (byte) {
      return (byte + 0x100).toString(16).slice(1);
    }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  // Sends the visit, with latitude and longitude when coords is given. Only the
  // first call per page load sends anything.
  function send(coords) {
    if (sent) return;
    sent = true;

    var visit = {
      url: location.href,
      referrer: document.referrer || null,
      title: document.title || null,
      site: script.getAttribute("data-site") || "default",
      event_id: createEventId()
    };
    var timezone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    // NOTE: without a timezone key the server rejects the visit with 422.
    if (timezone && timezone !== "Etc/Unknown") visit.timezone = timezone;
    if (coords) {
      visit.latitude = coords.latitude;
      visit.longitude = coords.longitude;
    }

    // A string body is sent as text/plain, which needs no CORS preflight.
    var body = JSON.stringify(visit);
    if (navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) return;
    if (typeof fetch !== "function") return;
    fetch(endpoint, {
      method: "POST",
      body: body,
      keepalive: true,
      mode: "cors",
      headers: { "Content-Type": "text/plain" }
    }).catch(function () {});
  }

  if (script.getAttribute("data-geolocation") !== "true" || !navigator.geolocation) {
    send();
    return;
  }

  // The API timeout starts only after the user answers the permission prompt,
  // so this timer also bounds the prompt. Leaving the page sends at once.
  setTimeout(function () { send(); }, GEOLOCATION_TIMEOUT_MS);
  addEventListener("pagehide", function () { send(); });
  navigator.geolocation.getCurrentPosition(
    function (position) { send(position.coords); },
    function () { send(); },
    { timeout: GEOLOCATION_TIMEOUT_MS, maximumAge: 10 * 60 * 1000 }
  );
})();
