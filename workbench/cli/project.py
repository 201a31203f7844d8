"""Project commands: ``init``, ``check``, ``promote``/``demote``, ``image``, ``env``, ``package``, ``tui``.

The core computes (a promotion plan, a package listing, an image build); this module prints."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import load_config
from ..errors import UsageError, WorkbenchError
from ..graph import build_graph, find_flow_files
from .inspect import _rel


def cmd_check(args) -> int:
    from ..settings import all_settings

    failures = 0
    try:
        config = load_config()
    except WorkbenchError as exc:
        print(f"error {exc}")
        return 1
    paths = []
    for raw in args.paths or [str(config.flows_dir)]:
        p = Path(raw)
        paths.extend(find_flow_files(p) if p.is_dir() else [p])
    if not paths:
        print(f"no flow files in {', '.join(args.paths) or config.flows_dir}")
        return 1
    names = []
    for path in paths:
        graph = build_graph(path)
        names.append(graph.name)
        errors: list[WorkbenchError] = list(graph.errors)
        if not errors:
            try:
                all_settings(graph, config)
            except WorkbenchError as exc:
                errors.append(exc)
        if errors:
            failures += 1
            for e in errors:
                print(f"error {e}")
        else:
            print(f"ok    {_rel(str(path))}: {graph.name} ({len(graph.steps)} steps)")
            failures += _preflight_lines(graph, config)
    if config.path:
        # [flows.<name>] tables are matched by class name; only a check of the whole project sees every flow
        every_flow_named = names and all(names)  # a broken file's flow name is unknown: do not guess
        unknown = config.unknown_flow_tables([n for n in names if n]) if every_flow_named and not args.paths else []
        for e in unknown:
            print(f"error {e}")
        failures += len(unknown)
        if not unknown:
            print(f"ok    {_rel(str(config.path))}")
    return 1 if failures else 0


def templates_dir() -> Path:
    here = Path(__file__).resolve().parent.parent  # the workbench package
    for candidate in (here / "_templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise UsageError("workbench's templates are missing from this installation")


def cmd_init(args) -> int:
    target = Path(args.dir).resolve()
    tpl = templates_dir()
    files = {target / "workbench.toml": tpl / "workbench.toml", target / "flows" / "hello.py": tpl / "flow.py"}
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise UsageError(f"{existing[0]} already exists; init does not overwrite files")
    for dest, src in files.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text().replace("{{project_name}}", target.name)
        dest.write_text(text)
        print(f"created {dest}")
    print(f"next: cd {args.dir} && workbench run flows/hello.py")
    return 0


def cmd_promote(args) -> int:
    """Write a step's new backend/resources into workbench.toml (or show the diff with --dry-run)."""
    from ..project_files import find_step_flow
    from ..promote import apply_promotion, plan_promotion

    config = load_config()
    graph = find_step_flow(args.step, config, args.flow)
    changes = {
        k: getattr(args, k.replace("-", "_"), None)
        for k in ("backend", "cpu", "memory", "gpu", "image", "timeout", "shared_memory")
    }
    plan = plan_promotion(config, graph, args.step, changes)
    diff = plan.diff if args.dry_run else apply_promotion(plan)
    if not diff:
        print(f"{graph.name}.{args.step}: already {plan.settings.summary()}; nothing to change")
    else:
        sys.stdout.write(diff)
        verb = "would run" if args.dry_run else "now runs"
        print(f"{graph.name}.{args.step} {verb} on {plan.settings.summary()}")
    for note in plan.notes:
        print(f"  {note}")
    return 0


def cmd_demote(args) -> int:
    """Remove a step's table from workbench.toml (or show the diff with --dry-run)."""
    from ..config import CONFIG_NAME
    from ..project_files import find_step_flow
    from ..promote import demote_step

    config = load_config()
    graph = find_step_flow(args.step, config, args.flow)
    if config.path is None:
        print(f"no {CONFIG_NAME}: {graph.name}.{args.step} has no overrides")
        return 0
    diff = demote_step(config, graph, args.step, dry_run=args.dry_run)
    if not diff:
        print(f"{graph.name}.{args.step} has no overrides in {config.path.name}")
        return 0
    sys.stdout.write(diff)
    return 0


def cmd_image(args) -> int:
    """``workbench image build``: the docker backend's image builder, its build output streamed line by line."""
    from ..errors import BackendError
    from ..image import build_project_image

    config = load_config()
    try:
        build_project_image(
            config,
            base=getattr(args, "base", None),
            tag=getattr(args, "tag", None),
            say=lambda line: print(line, flush=True),
        )
    except BackendError as exc:
        if not exc.message.startswith("image build failed"):
            raise
        print(f"workbench: {exc.message}", file=sys.stderr)
        return 1
    return 0


def cmd_env(args) -> int:
    from . import env  # `workbench env show|build`

    return getattr(env, f"cmd_env_{args.env_command}")(args, load_config())


def cmd_package(args) -> int:
    """``workbench package show FLOW``: every file that would ship, its size, the total, the package's hash."""
    from ..package import describe_package, human_size
    from ..project_files import resolve_flow

    config = load_config()
    listing = describe_package(resolve_flow(args.flow, config), config)
    pkg = listing.package
    print(f"code package for {listing.flow} (project {listing.root}):")
    for f in listing.project_files:
        print(f"  {human_size(f.size):>10}  {f.arcname[len('project/') :]}")
    lib_files = listing.library_files
    print(f"  {human_size(sum(f.size for f in lib_files)):>10}  workbench package ({len(lib_files)} files)")
    print(
        f"{len(pkg.files)} files, {human_size(pkg.size)} ({human_size(listing.compressed_size)} compressed), "
        f"sha256 {pkg.sha[:16]}"
    )
    if listing.upload_url:
        print(f"uploads to {listing.upload_url}")
    for name in pkg.left_out:
        print(f"  {'left out':>10}  {name}  (looks like a secret)")
    for warning in listing.warnings:
        print(f"warning: {warning}")
    return 0


def cmd_tui(args) -> int:
    try:
        from ..tui.app import run_app
    except ImportError as exc:
        raise UsageError(f"the terminal workbench is not available: {exc}") from None
    return run_app(load_config())


def _preflight_lines(graph, config) -> int:
    """`warn` lines for steps whose backend still needs something; `error` (counted) for impossible requests."""
    from ..preflight import image_warning, refuse_impossible, summary_line
    from ..settings import all_settings

    errors = 0
    for step, s in all_settings(graph, config).items():
        try:
            refuse_impossible(s)
        except WorkbenchError as exc:
            print(f"error {_rel(graph.path)}: step {step}: {exc}")
            errors += 1
        for line in (summary_line(step, config, s), image_warning(config, s)):
            if line:
                print(f"warn  {_rel(graph.path)}: {line if line.startswith('step') else f'step {step}: {line}'}")
    return errors
