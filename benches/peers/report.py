"""Turns one run of scripts/bench-peers.sh into its table and plot.

Reads OUT/results.tsv (one row per server, scenario, algorithm and connection count, written by
scripts/bench-lib.sh; the raw signing rates as rows of the server `raw-signature`) and OUT/run.txt
(date, machine, load, settings), and writes OUT/peers.md (the Markdown table with the ratios
tokenwarden / peer and tokenwarden / limit, and the issue's targets) and OUT/peers.png
(throughput and p99 per server).

    python report.py OUT
"""

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERVERS = ["tokenwarden", "node-oidc-provider", "keycloak"]
COLORS = {"tokenwarden": "#1f6feb", "node-oidc-provider": "#3fa34d", "keycloak": "#d9822b"}
GRANTS = {"cc": "client_credentials", "refresh": "refresh_token"}
COLUMNS = ["server", "scenario", "alg", "conns", "rate", "p50_us", "p99_us", "non2xx", "rss_kib", "hwm_kib", "runs"]


def read(out):
    rows = []
    for line in (out / "results.tsv").read_text().splitlines():
        if line.strip():
            rows.append(dict(zip(COLUMNS, line.split("\t"))))
    return rows


def number(text):
    return None if text in (None, "-", "") else float(text)


def fmt_rate(value):
    return f"{value:,.0f}"


def fmt_ratio(value):
    return "—" if value is None else (f"{value:.2f}" if value < 10 else f"{value:.0f}")


class Results:
    def __init__(self, rows):
        self.rows = rows
        self.raw = {r["alg"]: number(r["rate"]) for r in rows if r["server"] == "raw-signature"}

    def find(self, server, scenario, alg, conns):
        for row in self.rows:
            if (row["server"], row["scenario"], row["alg"], row["conns"]) == (server, scenario, alg, conns):
                return row
        return None

    def rate(self, server, scenario, alg, conns):
        row = self.find(server, scenario, alg, conns)
        return number(row["rate"]) if row else None

    def groups(self):
        """(scenario, alg, conns) of every measured grant, in a stable order."""
        seen = []
        for scenario in GRANTS:
            for alg in ("ES256", "RS256"):
                for row in self.rows:
                    key = (scenario, alg, row["conns"])
                    if row["scenario"] == scenario and row["alg"] == alg and key not in seen:
                        seen.append(key)
        return seen


def ratio(ours, theirs):
    return ours / theirs if ours and theirs else None


def table(results):
    lines = [
        "| grant | alg | conns | server | tokens/s (median; each run) | p50 ms | p99 ms | non-2xx "
        "| server RSS MiB (peak) | tokenwarden ÷ this |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario, alg, conns in results.groups():
        ours = results.rate("tokenwarden", scenario, alg, conns)
        head = f"| {GRANTS[scenario]} | {alg} | {conns} "
        for server in SERVERS:
            row = results.find(server, scenario, alg, conns)
            if row is None:
                continue
            rate = number(row["rate"])
            runs = " ".join(fmt_rate(float(r)) for r in row["runs"].split())
            lines.append(
                head + f"| {server} | {fmt_rate(rate)} ({runs}) | {number(row['p50_us']) / 1000:.2f} "
                f"| {number(row['p99_us']) / 1000:.2f} | {row['non2xx']} "
                f"| {number(row['rss_kib']) / 1024:.0f} ({number(row['hwm_kib']) / 1024:.0f}) "
                f"| {'1' if server == 'tokenwarden' else fmt_ratio(ratio(ours, rate))} |"
            )
        raw = results.raw.get(alg)
        if raw:
            lines.append(head + f"| *limit: raw {alg} signature, 1 core* | {fmt_rate(raw)} | | | | | {fmt_ratio(ratio(ours, raw))} |")
        empty = results.find("tokenwarden", "healthz", "-", conns)
        if empty:
            lines.append(
                head + f"| *limit: empty round trip (healthz)* | {fmt_rate(number(empty['rate']))} "
                f"| {number(empty['p50_us']) / 1000:.2f} | {number(empty['p99_us']) / 1000:.2f} | {empty['non2xx']} | "
                f"| {fmt_ratio(ratio(ours, number(empty['rate'])))} |"
            )
    return lines


def targets(results):
    """The targets of issue 9, each with what this run measured."""
    lines = ["| target (issue 9) | conns | measured | verdict |", "| --- | --- | --- | --- |"]

    def verdict(ok):
        return "—" if ok is None else ("met" if ok else "missed")

    conns_all = sorted({r["conns"] for r in results.rows if r["scenario"] == "cc"}, key=int)
    for conns in conns_all:
        ours = results.rate("tokenwarden", "cc", "ES256", conns)
        for peer, factor in (("node-oidc-provider", 10), ("keycloak", 50)):
            r = ratio(ours, results.rate(peer, "cc", "ES256", conns))
            lines.append(
                f"| ES256 client_credentials ≥ {factor}× {peer} (one core each) | {conns} "
                f"| {fmt_ratio(r)}× | {verdict(None if r is None else r >= factor)} |"
            )
        raw = results.raw.get("RS256")
        rs = results.rate("tokenwarden", "cc", "RS256", conns)
        r = ratio(rs, raw)
        lines.append(
            f"| RS256 client_credentials ≥ 95 % of the raw RS256 signing rate | {conns} "
            f"| {'—' if r is None else f'{r * 100:.0f} %'} | {verdict(None if r is None else r >= 0.95)} |"
        )
    row = results.find("tokenwarden", "cc", "ES256", "8")
    if row:
        p99 = number(row["p99_us"]) / 1000
        lines.append(f"| ES256 client_credentials p99 < 1 ms | 8 | {p99:.2f} ms | {verdict(p99 < 1)} |")
    return lines


def plot(results, out, title):
    groups = results.groups()
    servers = [s for s in SERVERS if any(r["server"] == s for r in results.rows)]
    width = 0.8 / len(servers)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 9), sharex=True)
    labels = [f"{GRANTS[s]}\n{alg}, {c} conns" for s, alg, c in groups]
    for i, server in enumerate(servers):
        xs, rates, p99s = [], [], []
        for g, (scenario, alg, conns) in enumerate(groups):
            row = results.find(server, scenario, alg, conns)
            if row:
                xs.append(g - 0.4 + width * (i + 0.5))
                rates.append(number(row["rate"]))
                p99s.append(number(row["p99_us"]) / 1000)
        box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5}
        bars = top.bar(xs, rates, width, label=server, color=COLORS[server], zorder=2)
        top.bar_label(bars, [f"{v:,.0f}" for v in rates], fontsize=7, padding=2, rotation=90, bbox=box, zorder=3)
        bars = bottom.bar(xs, p99s, width, label=server, color=COLORS[server], zorder=2)
        bottom.bar_label(bars, [f"{v:.1f}" if v >= 1 else f"{v:.2f}" for v in p99s], fontsize=7, padding=2,
                         rotation=90, bbox=box, zorder=3)
    for g, (scenario, alg, conns) in enumerate(groups):
        raw = results.raw.get(alg)
        if raw:
            top.hlines(raw, g - 0.45, g + 0.45, colors="black", linestyles="dashed", zorder=1,
                       label="limit: raw signature, 1 core" if g == 0 else None)
    top.set_yscale("log")
    top.set_ylabel("tokens/s (median, log scale)")
    top.set_ylim(top=top.get_ylim()[1] * 4)
    top.legend(loc="upper right", fontsize=9, ncol=4)
    top.set_title(title, fontsize=11)
    bottom.set_yscale("log")
    bottom.set_ylabel("p99 latency, ms (log scale)")
    bottom.set_ylim(top=bottom.get_ylim()[1] * 4)
    bottom.set_xticks(range(len(groups)), labels, fontsize=9)
    for axis in (top, bottom):
        axis.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    out = pathlib.Path(sys.argv[1])
    results = Results(read(out))
    if not results.find("tokenwarden", "cc", "ES256", results.groups()[0][2] if results.groups() else "8"):
        sys.exit(f"{out}/results.tsv has no tokenwarden client_credentials row")
    run = (out / "run.txt").read_text().strip().splitlines() if (out / "run.txt").exists() else []
    facts = dict(line.split(": ", 1) for line in run if ": " in line)
    title = (
        "Token endpoint: each server pinned to one core, wrk on the other\n"
        f"{facts.get('date', '')}; load average before the run {facts.get('load average before', '?').split(';')[0]}"
    )
    doc = ["# tokenwarden and its peers: the token endpoint", ""]
    doc += [f"- {line}" for line in run]
    doc += ["", *table(results), "", *targets(results), ""]
    (out / "peers.md").write_text("\n".join(doc))
    plot(results, out / "peers.png", title)


if __name__ == "__main__":
    main()
