// Times in the viewer's own zone and language.

const dateTime = new Intl.DateTimeFormat(undefined, {
  weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
});
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
  .formatToParts(new Date()).find((p) => p.type === "timeZoneName")?.value ?? "";

export function localDateTime(iso) {
  return iso ? dateTime.format(new Date(iso)) : "time to be confirmed";
}

export function localTime(iso) {
  return iso ? timeOnly.format(new Date(iso)) : "";
}

export function zoneName() {
  return zone;
}

/** "2d 03:04:05" style countdown to a moment; "now" once it has come. */
export function countdown(iso, now) {
  let seconds = Math.floor((Date.parse(iso) - now) / 1000);
  if (seconds <= 0) return "now";
  const days = Math.floor(seconds / 86400);
  seconds -= days * 86400;
  const pad = (n) => String(n).padStart(2, "0");
  const clock = `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor((seconds % 3600) / 60))}:${pad(seconds % 60)}`;
  return days > 0 ? `${days}d ${clock}` : clock;
}

/** A shared ticking clock for countdowns. */
export function ticking(intervalMs = 1000) {
  let now = $state(Date.now());
  $effect(() => {
    const timer = setInterval(() => { now = Date.now(); }, intervalMs);
    return () => clearInterval(timer);
  });
  return { get now() { return now; } };
}
