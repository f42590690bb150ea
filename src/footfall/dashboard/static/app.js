// footfall dashboard: polls GET /api/stats for one site and renders the totals,
// the most frequent visitors and the latest visits. All values are rendered as
// text nodes through htm, so nothing from the API is parsed as HTML.
// The browser sends the HttpOnly session cookie with each same-origin fetch; a
// 401 means the session ended, and the page goes to the login form.
import { html, render, useEffect, useState } from "./vendor/htm-preact-standalone-3.1.1.mjs";

const DEFAULT_SITE = "default";
const POLL_INTERVAL_MS = 2000;
const FETCH_TIMEOUT_MS = 10000;
const EMPTY_VALUE = "\u2014"; // em dash
const LOGIN_PATH = "/login";

// Returns the `site` query parameter, or DEFAULT_SITE when it is missing or blank.
function readSiteFromQuery() {
  const site = new URLSearchParams(window.location.search).get("site");
  return site && site.trim() ? site.trim() : DEFAULT_SITE;
}

function formatCellValue(value) {
  return value === null || value === undefined || value === "" ? EMPTY_VALUE : String(value);
}

function formatClockTime(date) {
  return date.toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
}

// Builds the message of a 4xx/5xx response from its JSON body, which is either
// {"detail": "..."} or {"errors": [{"field": "...", "message": "..."}]}.
async function readErrorDetail(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    return "";
  }

  if (typeof body?.detail === "string") {
    return body.detail;
  }
  if (Array.isArray(body?.errors)) {
    return body.errors
      .map((error) => (error.field ? `${error.field}: ${error.message}` : String(error.message)))
      .join("; ");
  }
  return body?.detail === undefined ? "" : JSON.stringify(body.detail);
}

function validateStats(stats) {
  const isValid =
    stats !== null &&
    typeof stats === "object" &&
    Array.isArray(stats.top_visitors) &&
    Array.isArray(stats.latest_visits);
  if (!isValid) {
    throw new Error("invalid response: expected an object with top_visitors and latest_visits arrays");
  }
}

// Fetches the stats of one site. Throws an Error whose message names the HTTP
// status, the network error or the timeout.
async function fetchStats(site) {
  const url = `/api/stats?site=${encodeURIComponent(site)}`;
  const controller = new AbortController();
  const timeoutId = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);

  try {
    let response;
    try {
      response = await fetch(url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
    } catch (error) {
      // fetch() rejects on a network error or an abort, never on an HTTP error status.
      throw new Error(`network error: ${error.message}`);
    }

    if (response.status === 401) {
      window.location.assign(LOGIN_PATH);
      throw new Error("session ended: going to the login page");
    }
    if (!response.ok) {
      const detail = await readErrorDetail(response);
      const status = `HTTP ${response.status} ${response.statusText}`.trim();
      throw new Error(detail ? `${status}: ${detail}` : status);
    }

    let stats;
    try {
      stats = await response.json();
    } catch (error) {
      throw new Error(`invalid JSON in response: ${error.message}`);
    }
    validateStats(stats);
    return stats;
  } catch (error) {
    if (controller.signal.aborted) {
      throw new Error(`timed out after ${FETCH_TIMEOUT_MS / 1000} s`);
    }
    throw error;
  } finally {
    clearTimeout(timeoutId);
  }
}

// Polls the stats of `site` right away and then POLL_INTERVAL_MS after each
// request finishes, so a slow server never has two polls from one page at once.
// A failed poll keeps the last good stats and sets `error`.
function usePolledStats(site) {
  const [state, setState] = useState({ stats: null, updatedAt: null, error: null });

  useEffect(() => {
    let isStopped = false;
    let timerId = null;
    let lastErrorMessage = null;

    async function poll() {
      try {
        const stats = await fetchStats(site);
        if (isStopped) return;
        lastErrorMessage = null;
        setState({ stats, updatedAt: new Date(), error: null });
      } catch (error) {
        if (isStopped) return;
        const message =
          `Failed to load stats for site "${site}": ${error.message} ` +
          `(retrying every ${POLL_INTERVAL_MS / 1000} s)`;
        // Log only a changed message, because a server that is down fails every poll.
        if (message !== lastErrorMessage) {
          console.warn(message);
          lastErrorMessage = message;
        }
        setState((previous) => ({ ...previous, error: message }));
      }
      timerId = setTimeout(poll, POLL_INTERVAL_MS);
    }

    poll();
    return () => {
      isStopped = true;
      clearTimeout(timerId);
    };
  }, [site]);

  return state;
}

// Switches sites with a plain GET form, so the new site is in the address bar
// and survives a reload. The input takes defaultValue, not value, because Preact
// writes a `value` prop back to the input on each render where the two differ,
// which would undo the user's typing at the next poll.
function SiteForm({ site }) {
  return html`
    <form class="site-form" method="get" data-testid="site-form">
      <label for="site-input">Site</label>
      <input id="site-input" name="site" defaultValue=${site} required autocomplete="off" />
      <button type="submit">Show</button>
    </form>
  `;
}

function StatusLine({ updatedAt, error }) {
  let status = "Loading\u2026";
  if (updatedAt) {
    status = `Updated ${formatClockTime(updatedAt)}`;
  } else if (error) {
    status = "No data loaded yet";
  }

  return html`
    <div class="status">
      <p data-testid="updated">${status}</p>
      ${error && html`<p class="error" role="alert" data-testid="error">${error}</p>`}
    </div>
  `;
}

function Totals({ stats }) {
  return html`
    <section id="totals" data-testid="totals" aria-label="Totals">
      <dl>
        <div class="total">
          <dt>Total visits</dt>
          <dd id="total-visits" data-testid="total-visits">${formatCellValue(stats?.total_visits)}</dd>
        </div>
        <div class="total">
          <dt>Distinct visitors</dt>
          <dd id="distinct-visitors" data-testid="distinct-visitors">
            ${formatCellValue(stats?.distinct_visitors)}
          </dd>
        </div>
      </dl>
    </section>
  `;
}

// Table cell for an ISO 8601 timestamp: the time in the viewer's locale and time
// zone as text, the raw value in `title`. A value that Date cannot parse is shown as is.
function TimeCell({ field, isoTimestamp }) {
  if (!isoTimestamp) {
    return html`<td data-field=${field}>${EMPTY_VALUE}</td>`;
  }

  const date = new Date(isoTimestamp);
  if (Number.isNaN(date.getTime())) {
    return html`<td data-field=${field} title=${isoTimestamp}>${isoTimestamp}</td>`;
  }
  return html`
    <td data-field=${field} title=${isoTimestamp}>
      <time datetime=${isoTimestamp}>${date.toLocaleString()}</time>
    </td>
  `;
}

function EmptyRow({ columnCount, text }) {
  return html`<tr class="empty"><td colspan=${columnCount}>${text}</td></tr>`;
}

function TopVisitors({ visitors }) {
  // The public view masks IPs to their network, so two rows can show the same value.
  const rows = visitors.map(
    (visitor, index) => html`
      <tr key=${`${index}-${visitor.ip}`} data-testid="top-visitor-row">
        <td data-field="ip">${formatCellValue(visitor.ip)}</td>
        <td data-field="visits" class="number">${formatCellValue(visitor.visits)}</td>
        <${TimeCell} field="last_visit_at" isoTimestamp=${visitor.last_visit_at} />
      </tr>
    `,
  );

  return html`
    <section>
      <h2 id="top-visitors-heading">Most frequent visitors</h2>
      <div class="table-scroll">
        <table id="top-visitors" data-testid="top-visitors" aria-labelledby="top-visitors-heading">
          <thead>
            <tr><th scope="col">IP</th><th scope="col" class="number">Visits</th><th scope="col">Last visit</th></tr>
          </thead>
          <tbody>
            ${rows.length ? rows : html`<${EmptyRow} columnCount=${3} text="No visitors yet" />`}
          </tbody>
        </table>
      </div>
    </section>
  `;
}

function LatestVisits({ visits }) {
  const rows = visits.map(
    (visit) => html`
      <tr key=${visit.id} data-testid="visit-row" data-id=${visit.id}>
        <td data-field="ip">${formatCellValue(visit.ip)}</td>
        <${TimeCell} field="visited_at" isoTimestamp=${visit.visited_at} />
        <td data-field="timezone">${formatCellValue(visit.timezone)}</td>
        <td data-field="email">${formatCellValue(visit.email)}</td>
        <td data-field="latitude" class="number">${formatCellValue(visit.latitude)}</td>
        <td data-field="longitude" class="number">${formatCellValue(visit.longitude)}</td>
        <td data-field="url" class="url">${formatCellValue(visit.url)}</td>
      </tr>
    `,
  );

  return html`
    <section>
      <h2 id="latest-visits-heading">Latest visits</h2>
      <div class="table-scroll">
        <table id="latest-visits" data-testid="latest-visits" aria-labelledby="latest-visits-heading">
          <thead>
            <tr>
              <th scope="col">IP</th>
              <th scope="col">Time</th>
              <th scope="col">Timezone</th>
              <th scope="col">Email</th>
              <th scope="col" class="number">Latitude</th>
              <th scope="col" class="number">Longitude</th>
              <th scope="col">URL</th>
            </tr>
          </thead>
          <tbody>
            ${rows.length ? rows : html`<${EmptyRow} columnCount=${7} text="No visits yet" />`}
          </tbody>
        </table>
      </div>
    </section>
  `;
}

function App({ site }) {
  const { stats, updatedAt, error } = usePolledStats(site);

  useEffect(() => {
    document.title = `footfall \u00b7 ${site}`;
  }, [site]);

  return html`
    <header class="page-header">
      <h1>footfall</h1>
      <p class="site">Site: <strong data-testid="site">${site}</strong></p>
      <${SiteForm} site=${site} />
      <form class="logout" method="post" action="/logout">
        <button type="submit" data-testid="logout">Log out</button>
      </form>
    </header>
    <${StatusLine} updatedAt=${updatedAt} error=${error} />
    <${Totals} stats=${stats} />
    <${TopVisitors} visitors=${stats?.top_visitors ?? []} />
    <${LatestVisits} visits=${stats?.latest_visits ?? []} />
  `;
}

render(html`<${App} site=${readSiteFromQuery()} />`, document.getElementById("app"));
