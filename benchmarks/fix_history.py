"""Synthetic but realistic fix-attempt histories with a known ground truth.

Why synthetic: to measure whether a recommender picks the strategy that works,
we need to know which one works, which no real log tells us. The generator keeps
the shape of real quality-loop logs (the vocabulary of events.models: issue types, agents,
free-text strategies, stages, tool-like messages and file paths) and adds a
hidden truth:

* Each *kind* of issue (e.g. SQL injection vs. hard-coded secret, both
  ``security``) has its own success probability per ``agent:strategy``; the best
  one differs between kinds of the same issue type, so the issue type alone is
  not enough to choose well.
* Agents choose strategies by habit (a popularity policy per issue type that
  knows nothing about the truth), as in an untuned loop; outcomes are Bernoulli
  draws, so they are noisy.
* Drift: at ``drift_at`` (a fraction of the timeline) some kinds change their
  best strategy (a new agent version, a changed linter rule), so stale evidence
  misleads.

Everything is deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)

_PKGS = [
    "auth",
    "billing",
    "api",
    "core",
    "db",
    "users",
    "orders",
    "search",
    "payments",
    "notifications",
    "reports",
    "ingest",
    "scheduler",
    "cache",
    "storage",
    "web",
]
_MODS = [
    "service",
    "models",
    "views",
    "handlers",
    "client",
    "utils_io",
    "serializers",
    "repository",
    "session_store",
    "sql_query",
    "tasks",
    "config",
    "pipeline",
    "routes",
]
_FUNCS = [
    "load_user",
    "get_orders",
    "build_query",
    "parse_payload",
    "render_report",
    "send_email",
    "sync_accounts",
    "compute_total",
    "fetch_page",
    "refresh_token",
    "validate_input",
    "apply_discount",
    "export_csv",
    "resolve_path",
]
_VARS = ["result", "user_id", "payload", "conn", "retries", "cursor", "token", "items", "cfg"]
_TYPES = ["int", "str", "None", "dict[str, Any]", "list[str]", "Optional[int]", "bytes", "float"]
_LIBS = ["requests", "pydantic", "sqlalchemy", "numpy", "yaml", "attrs", "httpx", "click"]


@dataclass(frozen=True)
class IssueKind:
    """One kind of issue: how it is reported, where it occurs, and what truly fixes it."""

    name: str
    issue_type: str
    stages: tuple[str, ...]
    messages: tuple[str, ...]
    paths: tuple[str, ...]
    #: true success probability per "Agent:strategy" before drift
    truth: dict[str, float]
    #: after drift: probabilities that change (others keep their values)
    drift: dict[str, float] = field(default_factory=dict)


# Habitual choice per issue type: which agent:strategy a loop tries, how often.
POLICY: dict[str, dict[str, float]] = {
    "security": {
        "SecurityAgent:security_fix": 0.45,
        "SecurityAgent:input_validation": 0.2,
        "RefactoringAgent:refactor": 0.2,
        "PatternAgent:pattern_replace": 0.15,
    },
    "type_error": {
        "TypeErrorSpecialistAgent:type_error_fix": 0.5,
        "TypeErrorSpecialistAgent:add_annotations": 0.2,
        "RefactoringAgent:refactor": 0.15,
        "SemanticAgent:semantic_fix": 0.15,
    },
    "formatting": {
        "FormattingAgent:format": 0.6,
        "FormattingAgent:line_wrap": 0.25,
        "RefurbCodeTransformerAgent:refurb_transform": 0.15,
    },
    "test_failure": {
        "TestSpecialistAgent:test_fix": 0.45,
        "TestEnvironmentAgent:fixture_repair": 0.2,
        "TestCreationAgent:test_generation": 0.15,
        "RefactoringAgent:refactor": 0.2,
    },
    "import_error": {
        "ImportOptimizationAgent:import_fix": 0.5,
        "DependencyAgent:dependency_pin": 0.3,
        "RefactoringAgent:refactor": 0.2,
    },
    "complexity": {
        "RefactoringAgent:refactor": 0.5,
        "ArchitectAgent:extract_module": 0.2,
        "PatternAgent:pattern_replace": 0.3,
    },
    "dead_code": {"DeadCodeRemovalAgent:dead_code_remove": 0.65, "RefactoringAgent:refactor": 0.35},
    "dependency": {
        "DependencyAgent:dependency_pin": 0.5,
        "DependencyAgent:dependency_upgrade": 0.3,
        "ImportOptimizationAgent:import_fix": 0.2,
    },
    "dry_violation": {
        "DRYAgent:dry_refactor": 0.55,
        "RefactoringAgent:refactor": 0.3,
        "PatternAgent:pattern_replace": 0.15,
    },
    "performance": {
        "PerformanceAgent:performance_optimize": 0.5,
        "RefactoringAgent:refactor": 0.25,
        "PerformanceAgent:cache_results": 0.25,
    },
    "documentation": {"DocumentationAgent:doc_update": 0.7, "SemanticAgent:semantic_fix": 0.3},
    "coverage_improvement": {
        "CoverageFanOutAgent:test_generation": 0.5,
        "TestCreationAgent:test_generation": 0.5,
    },
    "warning": {
        "WarningSuppressionAgent:suppress_warning": 0.45,
        "RefactoringAgent:refactor": 0.3,
        "RefurbCodeTransformerAgent:refurb_transform": 0.25,
    },
}

KINDS: tuple[IssueKind, ...] = (
    IssueKind(
        "sql_injection",
        "security",
        ("bandit", "semgrep"),
        (
            "B608: Possible SQL injection vector through string-based query construction in {func}",
            "Possible SQL injection: query built with f-string from user input {var}",
            "semgrep python.lang.security.audit.formatted-sql-query: formatted SQL query in {func}",
        ),
        ("src/{pkg}/sql_query.py", "src/{pkg}/repository.py", "app/{pkg}/db/queries.py"),
        {
            "SecurityAgent:security_fix": 0.35,
            "SecurityAgent:input_validation": 0.3,
            "RefactoringAgent:refactor": 0.2,
            "PatternAgent:pattern_replace": 0.8,
        },
    ),
    IssueKind(
        "hardcoded_secret",
        "security",
        ("gitleaks", "bandit"),
        (
            "B105: Possible hardcoded password: '{var}'",
            "gitleaks: generic-api-key detected in {pkg} settings",
            "Hard-coded credential assigned to {var} in {func}",
        ),
        ("src/{pkg}/config.py", "src/{pkg}/settings.py", "deploy/{pkg}_secrets.py"),
        {
            "SecurityAgent:security_fix": 0.85,
            "SecurityAgent:input_validation": 0.15,
            "RefactoringAgent:refactor": 0.3,
            "PatternAgent:pattern_replace": 0.25,
        },
        drift={"SecurityAgent:security_fix": 0.4, "RefactoringAgent:refactor": 0.8},
    ),
    IssueKind(
        "weak_hash",
        "security",
        ("bandit",),
        (
            "B324: Use of weak MD5 hash for security. Consider usedforsecurity=False",
            "B303: Use of insecure SHA1 hash function in {func}",
            "Weak cryptographic hash md5 used to derive {var}",
        ),
        ("src/{pkg}/tokens.py", "src/{pkg}/crypto_helpers.py", "lib/{pkg}/signing.py"),
        {
            "SecurityAgent:security_fix": 0.45,
            "SecurityAgent:input_validation": 0.2,
            "RefactoringAgent:refactor": 0.25,
            "PatternAgent:pattern_replace": 0.3,
        },
    ),
    IssueKind(
        "unsafe_deserialization",
        "security",
        ("bandit", "semgrep"),
        (
            "B301: Pickle and modules that wrap it can be unsafe when loading untrusted {var}",
            "B506: Use of unsafe yaml load. Allows instantiation of arbitrary objects",
            "Untrusted data deserialized with pickle.loads in {func}",
        ),
        ("src/{pkg}/cache.py", "src/{pkg}/serializers.py", "app/{pkg}/loader.py"),
        {
            "SecurityAgent:security_fix": 0.3,
            "SecurityAgent:input_validation": 0.75,
            "RefactoringAgent:refactor": 0.2,
            "PatternAgent:pattern_replace": 0.35,
        },
    ),
    IssueKind(
        "incompatible_arg",
        "type_error",
        ("mypy", "comprehensive"),
        (
            'Argument 1 to "{func}" has incompatible type "{t1}"; expected "{t2}"',
            'Argument "{var}" to "{func}" has incompatible type "{t1}"; expected "{t2}"',
        ),
        ("src/{pkg}/{mod}.py", "lib/{pkg}/{mod}.py"),
        {
            "TypeErrorSpecialistAgent:type_error_fix": 0.8,
            "TypeErrorSpecialistAgent:add_annotations": 0.35,
            "RefactoringAgent:refactor": 0.3,
            "SemanticAgent:semantic_fix": 0.4,
        },
    ),
    IssueKind(
        "missing_annotation",
        "type_error",
        ("mypy",),
        (
            'Function is missing a return type annotation  [no-untyped-def] in "{func}"',
            'Need type annotation for "{var}" (hint: "{var}: {t2} = ...")',
            'Call to untyped function "{func}" in typed context',
        ),
        ("src/{pkg}/{mod}.py", "app/{pkg}/{mod}.py"),
        {
            "TypeErrorSpecialistAgent:type_error_fix": 0.35,
            "TypeErrorSpecialistAgent:add_annotations": 0.85,
            "RefactoringAgent:refactor": 0.2,
            "SemanticAgent:semantic_fix": 0.25,
        },
    ),
    IssueKind(
        "optional_access",
        "type_error",
        ("mypy", "fast"),
        (
            'Item "None" of "Optional[{t2}]" has no attribute "{var}"  [union-attr]',
            'Incompatible return value type (got "{t1} | None", expected "{t1}")',
        ),
        ("src/{pkg}/{mod}.py",),
        {
            "TypeErrorSpecialistAgent:type_error_fix": 0.55,
            "TypeErrorSpecialistAgent:add_annotations": 0.2,
            "RefactoringAgent:refactor": 0.3,
            "SemanticAgent:semantic_fix": 0.75,
        },
        drift={"SemanticAgent:semantic_fix": 0.35, "TypeErrorSpecialistAgent:type_error_fix": 0.8},
    ),
    IssueKind(
        "line_too_long",
        "formatting",
        ("ruff-check", "fast"),
        ("E501 Line too long ({n} > 100)", "Line too long ({n} > 88 characters) in {func}"),
        ("src/{pkg}/{mod}.py", "tests/{pkg}/test_{mod}.py"),
        {
            "FormattingAgent:format": 0.6,
            "FormattingAgent:line_wrap": 0.9,
            "RefurbCodeTransformerAgent:refurb_transform": 0.3,
        },
    ),
    IssueKind(
        "unformatted_file",
        "formatting",
        ("ruff-format",),
        (
            "Would reformat: src/{pkg}/{mod}.py",
            "File would be reformatted by ruff format",
            "W291 trailing whitespace; W293 blank line contains whitespace",
        ),
        ("src/{pkg}/{mod}.py", "scripts/{mod}.py"),
        {
            "FormattingAgent:format": 0.95,
            "FormattingAgent:line_wrap": 0.4,
            "RefurbCodeTransformerAgent:refurb_transform": 0.3,
        },
    ),
    IssueKind(
        "assertion_mismatch",
        "test_failure",
        ("pytest", "comprehensive"),
        (
            "AssertionError: assert {n} == {n2} in test_{func}",
            "FAILED tests/{pkg}/test_{mod}.py::test_{func} - AssertionError: expected {var}",
        ),
        ("tests/{pkg}/test_{mod}.py", "tests/unit/test_{mod}.py"),
        {
            "TestSpecialistAgent:test_fix": 0.75,
            "TestEnvironmentAgent:fixture_repair": 0.25,
            "TestCreationAgent:test_generation": 0.2,
            "RefactoringAgent:refactor": 0.4,
        },
        drift={"TestSpecialistAgent:test_fix": 0.35, "RefactoringAgent:refactor": 0.75},
    ),
    IssueKind(
        "fixture_error",
        "test_failure",
        ("pytest",),
        (
            "ERROR at setup of test_{func}: fixture '{var}' not found",
            "fixture 'tmp_{var}' raised ConnectionRefusedError during setup",
            "ScopeMismatch: You tried to access the function scoped fixture {var} with a session scoped request",
        ),
        ("tests/conftest.py", "tests/{pkg}/conftest.py", "tests/integration/test_{mod}.py"),
        {
            "TestSpecialistAgent:test_fix": 0.3,
            "TestEnvironmentAgent:fixture_repair": 0.85,
            "TestCreationAgent:test_generation": 0.15,
            "RefactoringAgent:refactor": 0.2,
        },
    ),
    IssueKind(
        "module_not_found",
        "import_error",
        ("pytest", "fast"),
        (
            "ModuleNotFoundError: No module named '{lib}'",
            "ImportError: cannot import name '{func}' from '{lib}'",
        ),
        ("src/{pkg}/__init__.py", "src/{pkg}/{mod}.py"),
        {
            "ImportOptimizationAgent:import_fix": 0.35,
            "DependencyAgent:dependency_pin": 0.8,
            "RefactoringAgent:refactor": 0.2,
        },
    ),
    IssueKind(
        "unused_import",
        "import_error",
        ("ruff-check",),
        (
            "F401 '{lib}' imported but unused",
            "I001 Import block is un-sorted or un-formatted",
            "F811 Redefinition of unused '{func}' from line {n}",
        ),
        ("src/{pkg}/{mod}.py", "app/{pkg}/{mod}.py"),
        {
            "ImportOptimizationAgent:import_fix": 0.9,
            "DependencyAgent:dependency_pin": 0.1,
            "RefactoringAgent:refactor": 0.4,
        },
    ),
    IssueKind(
        "long_function",
        "complexity",
        ("complexity", "comprehensive"),
        (
            "C901 '{func}' is too complex ({n})",
            "Function {func} has cyclomatic complexity {n} (> 15)",
            "PLR0912 Too many branches ({n} > 12) in {func}",
        ),
        ("src/{pkg}/{mod}.py",),
        {
            "RefactoringAgent:refactor": 0.7,
            "ArchitectAgent:extract_module": 0.4,
            "PatternAgent:pattern_replace": 0.3,
        },
    ),
    IssueKind(
        "god_module",
        "complexity",
        ("complexity",),
        (
            "Module {pkg}.{mod} has {n} functions and {n2} lines; consider splitting",
            "Too many public methods ({n}/20) in class {func}",
        ),
        ("src/{pkg}/{mod}.py", "src/{pkg}/core.py"),
        {
            "RefactoringAgent:refactor": 0.3,
            "ArchitectAgent:extract_module": 0.8,
            "PatternAgent:pattern_replace": 0.25,
        },
    ),
    IssueKind(
        "unused_function",
        "dead_code",
        ("fast", "comprehensive"),
        (
            "vulture: unused function '{func}' (60% confidence)",
            "unused variable '{var}' (100% confidence)",
        ),
        ("src/{pkg}/{mod}.py",),
        {"DeadCodeRemovalAgent:dead_code_remove": 0.85, "RefactoringAgent:refactor": 0.4},
    ),
    IssueKind(
        "vulnerable_dependency",
        "dependency",
        ("comprehensive",),
        (
            "pip-audit: {lib} 1.{n}.0 has known vulnerability GHSA-{n2}",
            "Dependency {lib} pinned to a release with a known CVE",
        ),
        ("pyproject.toml", "requirements.txt", "uv.lock"),
        {
            "DependencyAgent:dependency_pin": 0.3,
            "DependencyAgent:dependency_upgrade": 0.85,
            "ImportOptimizationAgent:import_fix": 0.1,
        },
    ),
    IssueKind(
        "version_conflict",
        "dependency",
        ("fast",),
        (
            "ResolutionImpossible: {lib}>=2 conflicts with {lib2}<2",
            "Cannot install {lib}: conflicting dependencies on {lib2}",
        ),
        ("pyproject.toml", "requirements-dev.txt"),
        {
            "DependencyAgent:dependency_pin": 0.8,
            "DependencyAgent:dependency_upgrade": 0.3,
            "ImportOptimizationAgent:import_fix": 0.15,
        },
    ),
    IssueKind(
        "duplicate_block",
        "dry_violation",
        ("comprehensive",),
        (
            "Similar lines in 2 files: {pkg}.{mod} and {pkg}.service ({n} lines)",
            "Duplicate code block of {n} lines found in {func}",
        ),
        ("src/{pkg}/{mod}.py",),
        {
            "DRYAgent:dry_refactor": 0.8,
            "RefactoringAgent:refactor": 0.45,
            "PatternAgent:pattern_replace": 0.3,
        },
    ),
    IssueKind(
        "n_plus_one",
        "performance",
        ("comprehensive",),
        (
            "N+1 query pattern: {func} issues a query per item in a loop",
            "Database query executed inside loop over {var} in {func}",
        ),
        ("src/{pkg}/repository.py", "src/{pkg}/views.py"),
        {
            "PerformanceAgent:performance_optimize": 0.75,
            "RefactoringAgent:refactor": 0.35,
            "PerformanceAgent:cache_results": 0.3,
        },
    ),
    IssueKind(
        "repeated_computation",
        "performance",
        ("comprehensive", "refurb"),
        (
            "PERF401 Use a list comprehension to create a transformed list in {func}",
            "Expensive call {func}() repeated with identical arguments; result could be memoized",
        ),
        ("src/{pkg}/{mod}.py",),
        {
            "PerformanceAgent:performance_optimize": 0.35,
            "RefactoringAgent:refactor": 0.3,
            "PerformanceAgent:cache_results": 0.85,
        },
        drift={"PerformanceAgent:cache_results": 0.3, "PerformanceAgent:performance_optimize": 0.8},
    ),
    IssueKind(
        "missing_docstring",
        "documentation",
        ("ruff-check",),
        (
            "D103 Missing docstring in public function '{func}'",
            "D101 Missing docstring in public class",
        ),
        ("src/{pkg}/{mod}.py",),
        {"DocumentationAgent:doc_update": 0.9, "SemanticAgent:semantic_fix": 0.3},
    ),
    IssueKind(
        "uncovered_branch",
        "coverage_improvement",
        ("pytest", "comprehensive"),
        (
            "Coverage of src/{pkg}/{mod}.py is {n}% (< 80%); lines {n2}-{n3} never run",
            "Branch {n} -> {n2} in {func} not covered by tests",
        ),
        ("src/{pkg}/{mod}.py",),
        {"CoverageFanOutAgent:test_generation": 0.75, "TestCreationAgent:test_generation": 0.45},
    ),
    IssueKind(
        "deprecation_warning",
        "warning",
        ("pytest", "fast"),
        (
            "DeprecationWarning: datetime.utcnow() is deprecated in {func}",
            "PendingDeprecationWarning: {lib}.{func} will be removed in the next major release",
        ),
        ("src/{pkg}/{mod}.py",),
        {
            "WarningSuppressionAgent:suppress_warning": 0.25,
            "RefactoringAgent:refactor": 0.4,
            "RefurbCodeTransformerAgent:refurb_transform": 0.8,
        },
    ),
)


@dataclass(frozen=True)
class GeneratedAttempt:
    """A fix attempt as a producer would record it, plus the hidden kind it came from."""

    issue_type: str
    message: str
    file_path: str
    line_number: int
    stage: str
    agent: str
    strategy: str
    success: bool
    session_id: str
    timestamp: datetime
    kind: str

    @property
    def agent_strategy(self) -> str:
        return f"{self.agent}:{self.strategy}"


@dataclass
class FixHistory:
    """Generated attempts in time order, and the truth needed to score recommendations."""

    attempts: list[GeneratedAttempt]
    kinds: dict[str, IssueKind]
    drift_time: datetime

    def success_probability(self, kind: str, agent_strategy: str, when: datetime) -> float:
        """True chance that ``agent_strategy`` fixes an issue of ``kind`` at ``when``.

        Pairs the loop never uses for that issue type (e.g. FormattingAgent on a
        security issue) have a low floor, not zero.
        """
        spec = self.kinds[kind]
        if when >= self.drift_time and agent_strategy in spec.drift:
            return spec.drift[agent_strategy]
        return spec.truth.get(agent_strategy, 0.05)

    def best(self, kind: str, when: datetime) -> str:
        """The hidden best ``agent:strategy`` for ``kind`` at ``when``."""
        spec = self.kinds[kind]
        return max(spec.truth, key=lambda c: self.success_probability(kind, c, when))


def _fill(template: str, rng: random.Random) -> str:
    t1, t2 = rng.sample(_TYPES, 2)
    lib, lib2 = rng.sample(_LIBS, 2)
    return template.format(
        pkg=rng.choice(_PKGS),
        mod=rng.choice(_MODS),
        func=rng.choice(_FUNCS),
        var=rng.choice(_VARS),
        t1=t1,
        t2=t2,
        lib=lib,
        lib2=lib2,
        n=rng.randint(12, 140),
        n2=rng.randint(2, 400),
        n3=rng.randint(401, 900),
    )


def generate_history(
    n: int = 5000,
    seed: int = 0,
    days: int = 365,
    drift_at: float = 0.55,
    kinds: tuple[IssueKind, ...] = KINDS,
) -> FixHistory:
    """``n`` attempts over ``days`` days, time-ordered, deterministic for ``seed``.

    Kinds occur with Zipf-like frequencies (a few kinds dominate, as in real
    loops); attempts arrive in sessions of a few issues each.
    """
    if n < 1:
        raise ValueError(f"n={n}: need at least one attempt")
    if not 0.0 <= drift_at <= 1.0:
        raise ValueError(f"drift_at={drift_at}: must be within [0, 1]")
    for kind in kinds:
        if kind.issue_type not in POLICY:
            raise ValueError(
                f"kind {kind.name!r}: no strategy policy for issue type {kind.issue_type!r}"
            )
    rng = random.Random(seed)
    order = list(kinds)
    rng.shuffle(order)
    popularity = [1.0 / (rank + 1) ** 0.6 for rank in range(len(order))]
    span = timedelta(days=days).total_seconds()
    offsets = sorted(rng.random() * span for _ in range(n))
    drift_time = START + timedelta(seconds=span * drift_at)
    history = FixHistory(attempts=[], kinds={k.name: k for k in kinds}, drift_time=drift_time)
    session_id = ""
    for i, off in enumerate(offsets):
        if i % rng.randint(3, 8) == 0 or not session_id:
            session_id = f"sess-{seed}-{i:06d}"
        kind = rng.choices(order, weights=popularity)[0]
        when = START + timedelta(seconds=off)
        policy = POLICY[kind.issue_type]
        choice = rng.choices(list(policy), weights=list(policy.values()))[0]
        p = history.success_probability(kind.name, choice, when)
        agent, strategy = choice.split(":", 1)
        history.attempts.append(
            GeneratedAttempt(
                issue_type=kind.issue_type,
                message=_fill(rng.choice(kind.messages), rng),
                file_path=_fill(rng.choice(kind.paths), rng),
                line_number=rng.randint(1, 800),
                stage=rng.choice(kind.stages),
                agent=agent,
                strategy=strategy,
                success=rng.random() < p,
                session_id=session_id,
                timestamp=when,
                kind=kind.name,
            )
        )
    return history
