// The page's strings, language and small formatting helpers. The strings come from the server (pages.STRINGS)
// in a JSON script tag, so templates and scripts share one source of truth.

const readJson = (id) => JSON.parse(document.getElementById(id)?.textContent ?? "{}");

const strings = readJson("genkeep-strings");
export const config = readJson("genkeep-config");
export const lang = config.lang ?? document.documentElement.lang ?? "en";

/** The string for `key` with its {placeholders} filled in. */
export function t(key, params = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

export function typeLabel(type) {
  return t(`type.${type}`);
}

/** "12s" / "3m 05s": how long a task has been running. */
export function formatElapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return m === 0 ? t("time.seconds", {s}) : t("time.minutes", {m, s: String(s).padStart(2, "0")});
}

/** "5 minutes" / "90 seconds": a limit the server is configured with, as a person says it. */
export function formatLimit(seconds) {
  return seconds % 60 === 0 ? t("time.limit_minutes", {m: seconds / 60}) : t("time.limit_seconds", {s: seconds});
}

const dateTime = new Intl.DateTimeFormat(lang, {month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"});

export function formatTime(iso) {
  const parsed = Date.parse(iso ?? "");
  return Number.isNaN(parsed) ? "" : dateTime.format(parsed);
}

/** What a failed task says to a person: the server's sentence, or our translation for common codes. */
export function taskErrorText(error) {
  if (!error) return t("form.error.unknown");
  if (error.code === "timeout" && strings["task_error.timeout_limit"] && config.taskTimeoutSeconds) {
    return t("task_error.timeout_limit", {limit: formatLimit(config.taskTimeoutSeconds)});
  }
  const translated = strings[`task_error.${error.code}`];
  return translated || error.message || t("form.error.unknown");
}

// One live region for the whole page. Each message is its own paragraph so two quick ones are both read;
// old ones are removed so the region never grows.
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region || !message) return;
  const line = document.createElement("p");
  line.textContent = message;
  region.append(line);
  setTimeout(() => line.remove(), 8000);
}

// The language switch: remembered for a year in a cookie the server reads when rendering the next page.
for (const button of document.querySelectorAll("[data-set-lang]")) {
  button.addEventListener("click", () => {
    const chosen = button.dataset.setLang;
    if (chosen === lang) return;
    const name = config.langCookie ?? "genkeep_lang";
    document.cookie = `${name}=${encodeURIComponent(chosen)}; path=/; max-age=${365 * 24 * 3600}; SameSite=Lax`;
    location.reload();
  });
}
