"""The README fits on a screen and leads into docs/; every link resolves; every key is told."""
import re

import pytest

from conftest import REPO
from matssl_bench.suite.schema import DATASET_EXTRA_KEYS, POOL_SOURCE_EXTRA_KEYS, ROW_KEYS

DOCS = sorted((REPO / 'docs').glob('*.md'))
LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')


def _links(path):
    text = re.sub(r'```.*?```', '', path.read_text(), flags=re.S)  # code blocks hold no links
    return LINK.findall(text)


def _anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes."""
    headings = re.findall(r'^#+\s+(.*?)\s*#*$', path.read_text(), flags=re.M)
    return {re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-') for h in headings}


def test_readme_is_short_and_links_every_docs_page():
    readme = REPO / 'README.md'
    assert len(readme.read_text().splitlines()) <= 300
    linked = {(readme.parent / link.split('#')[0]).resolve() for link in _links(readme)}
    assert DOCS and {p.resolve() for p in DOCS} - linked == set()


@pytest.mark.parametrize('page', [REPO / 'README.md', *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for link in _links(page):
        if re.match(r'[a-z]+:', link):  # https:, mailto:
            continue
        target, _, anchor = link.partition('#')
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f'{link}: no file {path}')
        elif anchor and path.suffix == '.md' and anchor not in _anchors(path):
            broken.append(f'{link}: no heading #{anchor} in {path.name}')
    assert broken == []


def test_docs_document_every_row_and_data_set_key():
    text = (REPO / 'docs' / 'suite-format.md').read_text()
    documented = {word for span in re.findall(r'`([^`]+)`', text)
                  for word in re.findall(r'[a-z_]+', span)}
    keys = set(ROW_KEYS) | set(DATASET_EXTRA_KEYS) | set(POOL_SOURCE_EXTRA_KEYS)
    assert keys - documented == set()


@pytest.mark.parametrize('page', [REPO / 'README.md', *DOCS], ids=lambda p: p.name)
def test_every_source_file_named_exists(page):
    """Docs point at code by path (`benchmarks/data/patching.py`); the paths stay true."""
    text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)
    named = set(re.findall(r'\b((?:benchmarks|tools|tests|examples)/[\w./-]+\.(?:py|md))', text))
    assert sorted(p for p in named if not (REPO / p).exists()) == []
