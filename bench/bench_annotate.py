"""The annotation loop as annotators feel it: key press -> next post on screen, and its explanation after that.

    python bench/bench_annotate.py [--checkpoint PATH] [--posts 30] [--think 1.0] [--queue random] [--out FILE]

Starts ``python app.py`` on a free port with a fresh data folder (MVSA-Single's val and unlabeled posts as
the queue; the shipped ``mmsa_core/weights/default.pt`` unless ``--checkpoint``), unless ``--url`` names a
running app. Each annotator is a headless Chromium page at 1280x800 with its own name on the Annotate tab:
it waits until the post on screen is explained, looks at it for ``--think`` seconds, presses 1, 2 or 3, and
the page itself records (``performance.now()``, no round trip to this script in the timings):

- next post: from the keydown to the first frame after the next post's card (id, text and its image,
  decoded) is in the page;
- explanation: from the same keydown to the first frame that shows that post's explanation (not a
  placeholder, not another post's).

First 1 annotator labels ``--posts`` posts, then 4 annotators at once label ``--posts`` // 2 each. The
browser runs on the same machine as the app and takes its share of the CPU.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.bench_app import add_app_arguments, app_with_queue  # noqa: E402
from bench.common import emit, percentiles  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# Installed in each page: the time of the last label key press, and when the post that followed it, then its
# explanation, were first on screen (the frame after they entered the page, the image decoded).
PROBE = """() => {
  const B = window.__bench = {t0: null, from: null, next: null, nextAt: null, explAt: null, waiters: []};
  B.wake = () => { const ws = B.waiters; B.waiters = []; ws.forEach((w) => w()); };
  const post = () => document.querySelector('#annotate-card .mmsa-card')?.dataset.post || null;
  window.addEventListener('keydown', (e) => {
    if (!'123'.includes(e.key)) return;
    Object.assign(B, {t0: performance.now(), from: post(), next: null, nextAt: null, explAt: null});
  }, true);
  const check = () => {
    const card = document.querySelector('#annotate-card .mmsa-card');
    const p = card && card.dataset.post;
    if (B.t0 !== null && B.next === null && p && p !== B.from && card.querySelector('.mmsa-text')) {
      B.next = p;
      const img = card.querySelector('img');
      const done = () => requestAnimationFrame(() => { B.nextAt = performance.now(); B.wake(); });
      img ? img.decode().then(done, done) : done();
    }
    const e = document.querySelector('#annotate-explanation .mmsa-explanation');
    if (B.next !== null && B.explAt === null && p === B.next && e && e.dataset.state === 'explained'
        && e.dataset.post === p && !e.classList.contains('mmsa-stale')) {
      B.explAt = -1;
      requestAnimationFrame(() => { B.explAt = performance.now(); B.wake(); });
    }
    B.wake();
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""
# Resolves with the value of the page-side function ``fn`` (source text) once it is truthy, re-testing it only
# when the page changes (the probe wakes the waiters): no polling, which would itself load the CPU being
# measured (Playwright's ``wait_for_function`` evaluates its test in the page every frame or every N ms).
UNTIL = """([fn, ms]) => new Promise((resolve, reject) => {
  const test = new Function('return (' + fn + ')()'), B = window.__bench;
  let over = false;
  const timer = setTimeout(() => { over = true; reject(new Error('not within ' + ms + ' ms')); }, ms);
  const attempt = () => {
    if (over) return;
    const v = test();
    if (v) { clearTimeout(timer); resolve(v); } else B.waiters.push(attempt);
  };
  attempt();
})"""
# After a key press: [the next post, ms until it was on screen], once it is.
NEXT = "() => { const B = window.__bench; return B.nextAt ? [B.next, B.nextAt - B.t0] : null; }"
# After that: ms from the key press until its explanation was on screen.
EXPLAINED = "() => { const B = window.__bench; return B.explAt > 0 ? B.explAt - B.t0 : null; }"
# Before a key press: the post on screen is explained.
READY = """() => { const c = document.querySelector('#annotate-card .mmsa-card'),
  e = document.querySelector('#annotate-explanation .mmsa-explanation');
  return !!c && !!e && e.dataset.state === 'explained' && e.dataset.post === c.dataset.post; }"""


async def annotator(browser, url: str, name: str, n_posts: int, think: float, seed: int, queue: str,
                    out: dict) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(120_000)
    await page.goto(url)
    await page.wait_for_function("document.querySelector('#identity-banner')?.innerText.length > 0")
    await page.fill("#annotator-name textarea, #annotator-name input", name)
    await page.get_by_role("tab", name="Annotate").click()
    first = "() => document.querySelector('#annotate-card .mmsa-card')?.dataset.post || null"
    post = await (await page.wait_for_function(first)).json_value()
    if queue != "least_confident":
        await page.click("#annotate-strategy input")
        await page.get_by_role("option", name=f"Queue: {queue.replace('_', ' ')}").click()
        await page.wait_for_function(f"([p]) => ({first})() !== p", arg=[post])
        post = await (await page.wait_for_function(first)).json_value()
    await page.evaluate(PROBE)
    rng = random.Random(seed)
    for _ in range(n_posts):
        try:  # the explanation of the post on screen first (it was counted, or missed, after the last key)
            await page.evaluate(UNTIL, [READY, 30_000])
        except Exception:
            pass
        await asyncio.sleep(think)
        await page.keyboard.press(rng.choice("123"))
        _post, ms = await page.evaluate(UNTIL, [NEXT, 60_000])
        out["next"].append(ms)
        try:
            out["explained"].append(await page.evaluate(UNTIL, [EXPLAINED, 30_000]))
        except Exception:
            out["unexplained"] += 1
    out["contexts"].append(context)  # closed by ``phase`` once it has read the browser's CPU time


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far by the app (``app.py`` and its children) and by Chromium, from psutil."""
    import psutil

    used = {"app": 0.0, "browser": 0.0}
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        cmd, t = " ".join(proc.info["cmdline"] or []), proc.info["cpu_times"]
        if t is None:
            continue
        if "chrom" in (proc.info["name"] or "") or "chrom" in cmd:
            used["browser"] += t.user + t.system
        elif "app.py" in cmd:
            used["app"] += t.user + t.system + t.children_user + t.children_system
    return used


async def phase(url: str, n_annotators: int, n_posts: int, think: float, tag: str, queue: str) -> dict:
    from playwright.async_api import async_playwright

    out = {"next": [], "explained": [], "unexplained": 0, "contexts": []}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(annotator(browser, url, f"{tag}-{k}", n_posts, think, k, queue, out)
                               for k in range(n_annotators)))
        cpu1, wall = cpu_seconds(), time.perf_counter() - t0
        out["cpu"] = {k: (cpu1[k] - cpu0[k]) / wall for k in cpu0}  # cores busy on average
        for context in out.pop("contexts"):
            await context.close()
        await browser.close()
    return out


def row(n_annotators: int, out: dict) -> str:
    nxt, expl = percentiles(out["next"]), percentiles(out["explained"] or [float("nan")])
    return (f"| {n_annotators} | {nxt['n']} | {nxt['p50']:.0f} | {nxt['p95']:.0f} | {expl['p50']:.0f} | "
            f"{expl['p95']:.0f} | {out['unexplained']} | {out['cpu']['app']:.2f} | {out['cpu']['browser']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_app_arguments(ap, "the shipped model")
    ap.add_argument("--posts", type=int, default=30, help="posts labelled by the single annotator (4: half each)")
    ap.add_argument("--think", type=float, default=1.0, help="seconds an annotator looks at an explained post")
    ap.add_argument("--queue", default="random", help="queue strategy (random: annotators see different posts, "
                    "so none gets a post another one's explanation was computed for)")
    ap.add_argument("--out")
    a = ap.parse_args()
    with app_with_queue(a.url, a.mvsa_dir, a.checkpoint, "bench-annotate-") as (url, _):
        load_before = os.getloadavg()[0]
        asyncio.run(phase(url, 1, 3, a.think, "warmup", a.queue))  # loads the model, warms the code paths
        rows = []
        for n in (1, 4):
            t = time.perf_counter()
            out = asyncio.run(phase(url, n, a.posts if n == 1 else max(1, a.posts // 2), a.think, f"bench{n}",
                                    a.queue))
            rows.append(row(n, out))
            print(rows[-1], f"({time.perf_counter() - t:.0f} s)", flush=True)
        md = (f"`python bench/bench_annotate.py --posts {a.posts} --think {a.think} --queue {a.queue}`: headless "
              "Chromium at 1280x800, "
              f"{os.cpu_count()} CPUs, load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after; "
              f"{time.strftime('%Y-%m-%d %H:%M')}.\n\n"
              "| annotators | posts | next post p50 ms | next post p95 ms | explanation p50 ms | explanation p95 ms "
              "| not explained within 30 s | app cores busy | browser cores busy |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows))
        emit(md, a.out)


if __name__ == "__main__":
    main()
