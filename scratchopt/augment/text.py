"""EDA's random deletion and random swap (Wei & Zou 2019): the lesson's text augmentation.

Both take a sentence as a list of tokens (``sentence.split()``) and return a new list; the
input is never changed. ``rng`` is a seed or a ``np.random.Generator``, by the one rule of
``checks.generator``: None draws fresh entropy, a Generator is used as it is (and advanced),
an int seeds one (a negative seed as its int64 bit pattern).
"""

from .. import checks
from ..checks import received


def _tokens(words):
    if isinstance(words, (str, bytes)):
        raise TypeError("`words` must be a list of tokens (e.g. sentence.split()), not a string: "
                        f"a string would be augmented letter by letter. {received('words', words)}")
    return list(words)


def random_deletion(words, p, rng=None):
    """Drop each word with probability ``p``; never return an empty list.

    ::

        keep word k   iff   u_k >= p,    u_k ~ U[0, 1)     (so P(drop) = p; p = 0 keeps all)
        nothing kept  ->  [one word chosen uniformly]

    Order is preserved. An empty input gives ``[]`` (there is nothing to keep). EDA's
    version keeps when ``u > p``; ``>=`` makes ``p = 0`` exactly the identity.
    Deleting from short sentences can delete the meaning with it (EDA uses ``p = 0.1``).

    Examples
    --------
    With ``rng=0`` the draws are ``np.random.default_rng(0).random(6)`` = 0.64, 0.27,
    0.04, 0.02, 0.81, 0.91: with ``p = 0.3`` the words at 0, 4 and 5 stay.

    >>> from scratchopt.augment import random_deletion
    >>> words = "the quick brown fox jumps over".split()
    >>> random_deletion(words, 0.3, rng=0)
    ['the', 'jumps', 'over']
    >>> random_deletion(words, 0.0, rng=0) == words  # p = 0 keeps every word
    True
    >>> len(random_deletion(words, 1.0, rng=0))  # p = 1: one word, never none
    1
    """
    words = _tokens(words)
    checks.number("p", p, at_least=0, at_most=1)
    rng = checks.generator(rng, "rng")
    if not words:
        return []
    u = rng.random(len(words))
    kept = [word for word, u_k in zip(words, u) if u_k >= p]
    if not kept:
        kept = [words[rng.integers(len(words))]]
    return kept


def random_swap(words, n, rng=None):
    """Exchange two distinct random positions, ``n`` times; the multiset of words is kept.

    ::

        repeat n times:   (i, j) ~ two distinct positions, uniformly;   swap words i and j

    Fewer than two words: returned unchanged. EDA redraws ``j`` up to three times when it
    equals ``i`` and then gives up on that swap; we draw a distinct pair directly, so every
    one of the ``n`` swaps happens (and ``n = 2`` can swap a pair back).

    Examples
    --------
    >>> from scratchopt.augment import random_swap
    >>> random_swap(["hello", "world"], 1, rng=0)  # two words: the one pair there is
    ['world', 'hello']
    >>> words = "the quick brown fox jumps over".split()
    >>> sorted(random_swap(words, 3, rng=0)) == sorted(words)  # the same words, moved
    True
    """
    words = _tokens(words)
    checks.integer("n", n, at_least=0)
    rng = checks.generator(rng, "rng")
    if len(words) < 2:
        return words
    for _ in range(n):
        i, j = rng.choice(len(words), size=2, replace=False)
        words[i], words[j] = words[j], words[i]
    return words
