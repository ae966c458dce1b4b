"""Input-parsing benchmark: the adversarial corpus's big inputs at growing sizes, to show linear time.

    python bench/inputs.py [--sizes 0.5,1,2,4] [--repeat 3] [--out bench/results/inputs.json]

Each case builds one hostile input of N MB (0.5, 1, 2, 4 by default) and times its parser, best of
`--repeat` runs; the file-size cap (2 MiB) is bypassed by handing the parsers text, so the 4 MB figures
show growth past it. `growth` is log(t_largest / t_smallest) / log(size ratio): about 1 for linear
time, 2 for quadratic; a case that stops at a limit (YAML's 100,000-value cap, the shot caps) flattens
out once it reaches it (growth near 0). `planned-shots` times validation and planning of a storyboard
of N thousand shots. For contrast, `old-anisora-pattern` runs the score pattern this replaced
(`\\s*(aesthetic|motion)\\s+score...`) on a few kB of spaces. Figures are printed and written as JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storyboard.adapters import anisora, pvscript  # noqa: E402
from storyboard.adapters.yamlsource import load_yaml  # noqa: E402
from storyboard.errors import InputError  # noqa: E402

MB = 1_000_000
SUFFIX = " aesthetic score: 5.5. motion score: 1.3. There is no text in the video."
OLD_SCORE = re.compile(r"\s*(aesthetic|motion)\s+score\s*:\s*([0-9]+(?:\.[0-9]+)?)\s*\.?", re.IGNORECASE)


def _anisora_spaces(n: int) -> str:
    return "x" + " " * n + "y@@a.png\n"


def _anisora_long_prompts(n: int) -> str:
    words = "a girl with silver hair waves at the camera "
    line = words * max(1, n // 2000 // len(words)) + SUFFIX + "@@a.png\n"
    return line * 2000


def _pv_markers(n: int) -> str:
    return "# T\n## s\n- [1s] x" + " >> a.png" * (n // 9) + "\n"


def _pv_mentions(n: int) -> str:
    return "## s\n- [1s] " + " ".join(f"@c{i}" for i in range(n // 8)) + "\n"


def _pv_refs(n: int) -> str:
    return "@hana: " + "a.png, " * (n // 7) + "| hair\n## s\n- [1s] x\n"


def _yaml_long_text(n: int) -> str:
    return "sakuga: 1\ndescription: |\n" + ("  " + "x" * 76 + "\n") * (n // 79) + "scenes: []\n"


def _yaml_flow_list(n: int) -> str:
    return "sakuga: 1\nscenes: [" + "a, " * (n // 3) + "]\n"


def _yaml_shots(n: int) -> str:
    shot = "      - {id: s%d, frames: 17, prompt: x}\n"
    return "sakuga: 1\nscenes:\n  - id: s\n    shots:\n" + "".join(shot % i for i in range(n // 40))


CASES = {   # name → (parser, input of about n bytes)
    "anisora-2mb-line-of-spaces": (lambda t: anisora.parse(Path("p.txt"), t), _anisora_spaces),
    "anisora-long-prompts": (lambda t: anisora.parse(Path("p.txt"), t), _anisora_long_prompts),
    "pv-end-markers": (lambda t: pvscript.parse(Path("p.pv"), t), _pv_markers),
    "pv-mentions": (lambda t: pvscript.parse(Path("p.pv"), t), _pv_mentions),
    "pv-refs": (lambda t: pvscript.parse(Path("p.pv"), t), _pv_refs),
    "yaml-long-text": (lambda t: load_yaml(Path("b.yaml"), t), _yaml_long_text),
    "yaml-flow-list (100k-value cap)": (lambda t: load_yaml(Path("b.yaml"), t), _yaml_flow_list),
    "yaml-shots (100k-value cap)": (lambda t: load_yaml(Path("b.yaml"), t), _yaml_shots),
}


def best_of(repeat: int, fn) -> float:
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            fn()
        except InputError:
            pass   # most of these inputs are refused; the time to refuse is what counts
        best = min(best, time.perf_counter() - started)
    return best


def growth(points: list[dict], x: str) -> float:
    first, last = points[0], points[-1]
    if first["seconds"] <= 0 or last[x] == first[x]:
        return 0.0
    return round(math.log(max(last["seconds"], 1e-9) / first["seconds"]) / math.log(last[x] / first[x]), 2)


def parser_cases(sizes: list[float], repeat: int) -> list[dict]:
    rows = []
    for name, (parse, build) in CASES.items():
        points = []
        for mb in sizes:
            text = build(int(mb * MB))
            seconds = best_of(repeat, lambda: parse(text))
            points.append({"mb": round(len(text.encode()) / MB, 3), "seconds": round(seconds, 4),
                           "s_per_mb": round(seconds / (len(text.encode()) / MB), 4)})
        rows.append({"case": name, "points": points, "growth": growth(points, "mb")})
        print(f"{name:34}" + "".join(f"{p['mb']:6.2f} MB {p['seconds']:7.3f} s   " for p in points)
              + f"growth {rows[-1]['growth']}")
    return rows


def planned_shots(counts: list[int], repeat: int) -> dict:
    """Validation and planning of a storyboard of `count` shots (no pictures), end to end from a file;
    5 frames each, so 20,000 shots stay within the job's frame and segment limits."""
    from storyboard.load import load
    from storyboard.plan import build_plan

    points = []
    with tempfile.TemporaryDirectory() as folder:
        for count in counts:
            path = Path(folder) / f"b{count}.yaml"
            scenes = "".join(f"  - id: s{si}\n    shots:\n" + "".join(
                f"      - {{id: t{si}-{i}, frames: 5, prompt: shot {i}}}\n" for i in range(min(2000, count - si * 2000)))
                for si in range(-(-count // 2000)))
            path.write_text("sakuga: 1\nscenes:\n" + scenes)
            seconds = best_of(repeat, lambda: build_plan(load(path)))
            points.append({"shots": count, "seconds": round(seconds, 3), "ms_per_shot": round(seconds / count * 1e3, 3)})
    row = {"case": "planned-shots", "points": points, "growth": growth(points, "shots")}
    print(f"{'planned-shots':34}" + "".join(f"{p['shots']:6} sh {p['seconds']:7.3f} s   " for p in points)
          + f"growth {row['growth']}")
    return row


def old_pattern(repeat: int) -> dict:
    points = []
    for n in (2000, 4000, 8000):
        text = "x" + " " * n + "y"
        seconds = best_of(repeat, lambda: OLD_SCORE.sub("", text))
        points.append({"chars": n, "seconds": round(seconds, 4)})
    row = {"case": "old-anisora-pattern (replaced)", "points": points, "growth": growth(points, "chars")}
    print(f"{row['case']:34}" + "".join(f"{p['chars']:6} ch {p['seconds']:7.3f} s   " for p in points)
          + f"growth {row['growth']}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.5,1,2,4", help="input sizes in MB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the best is kept)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "inputs.json")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    rows = parser_cases(sizes, args.repeat)
    rows.append(planned_shots([2500, 5000, 10000, 20000], max(1, args.repeat - 1)))
    rows.append(old_pattern(args.repeat))
    result = {"python": platform.python_version(), "machine": platform.machine(), "sizes_mb": sizes,
              "repeat": args.repeat, "cases": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
