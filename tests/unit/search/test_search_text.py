"""The commit text format and the code-aware tokenizer."""

from __future__ import annotations

from symbiotic_assets.search.text import commit_text, parse_query, path_words, stem, tokenize


def test_path_words_split_paths_snake_and_camel_case():
    assert path_words("src/retry_policy.py") == "src retry policy py"
    assert path_words("lib/HttpClient.ts") == "lib Http Client ts"


def test_commit_text_documented_format_drops_trailers():
    text = commit_text(
        "Add exponential retry backoff",
        "Wait 2**n seconds.\n\nSigned-off-by: Bob <bob@example.com>\nCo-authored-by: A <a@b>",
        ["src/retry_policy.py", "tests/test_retry.py"],
    )
    assert text == (
        "Add exponential retry backoff\nWait 2**n seconds.\n"
        "Files: src retry policy py; tests test retry py"
    )
    assert commit_text("Only a subject", None, []) == "Only a subject"


def test_tokenizer_keeps_identifiers_whole_and_split():
    terms = tokenize("Fix compute_backoff in HTTPAdapter")
    assert "compute_backoff" in terms and "compute" in terms and "backoff" in terms
    assert "httpadapter" in terms and "http" in terms and "adapter" in terms
    assert "fix" in terms


def test_tokenizer_paths_hash_prefixes_and_issue_numbers():
    terms = tokenize("see src/retry_policy.py, a1b2c3d4e and #1234")
    assert "src/retry_policy.py" in terms and "retry" in terms and "policy" in terms
    assert "a1b2c3d4e" in terms  # not split into a, 1, b, ...
    assert "#1234" in terms
    # a word of 7+ letters that happens to be hex-only is a word, not a hash
    assert tokenize("facade") == ["facade"]


def test_stemming_joins_plural_and_tense_but_not_identifiers():
    assert stem("retries") == stem("retry") == "retry"
    assert stem("timeouts") == "timeout"
    assert stem("added") == "add"
    assert "retry_states" in tokenize("retry_states")  # identifiers are kept verbatim


def test_stopwords_dropped_but_a_stopword_only_query_still_has_terms():
    assert parse_query("where did we change the retry backoff").terms == ["retry", "backoff"]
    assert parse_query("what was it").terms  # falls back to keeping them


def test_parse_query_finds_exact_identifiers():
    q = parse_query("why did 3f2a9c1 break compute_backoff (#77)?")
    assert q.hex_prefixes == ("3f2a9c1",)
    assert q.issue_refs == ("#77",)
    assert q.identifiers == ("compute_backoff",)
    assert q.has_identifier
    assert not parse_query("retry backoff").has_identifier
