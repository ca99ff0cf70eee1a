"""TensorFlow's stateless random numbers: Philox4x32-10, as ``tf.random.stateless_uniform`` draws them.

Keras draws a dropout mask with ``tf.random.stateless_uniform(shape, seed, dtype)`` (inside
``tf.nn.experimental.stateless_dropout``). That is a pure function of the seed, so drawing the
same numbers here gives Keras's masks bit for bit. It takes three steps.

1. **Seed to key and counter** (TF's ``stateless_random_get_key_counter``). The two seed
   words, as 64-bit integers (an int32 seed is sign-extended), fill a 128-bit counter, and one
   Philox call under a fixed key scrambles it::

       (m0, m1, m2, m3) = philox((s0 lo, s0 hi, s1 lo, s1 hi), key=(0x3EC8F720, 0x02461E29))
       key = (m0, m1);   counter = (0, 0, m2, m3)

2. **Philox4x32-10** (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3").
   One call maps a 128-bit counter ``(c0, c1, c2, c3)`` and a 64-bit key ``(k0, k1)`` to four
   random 32-bit words by ten rounds of::

       hi0:lo0 = 0xD2511F53 * c0            a 64-bit product, split in two 32-bit halves
       hi1:lo1 = 0xCD9E8D57 * c2
       (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0,  lo1,  hi0 ^ c3 ^ k1,  lo0)
       (k0, k1) += (0x9E3779B9, 0xBB67AE85)  the key is bumped between rounds (mod 2**32)

   Call ``i`` (group ``i`` of the output) runs on the counter plus ``i``. The counter's low
   64 bits start at 0, so group ``i``'s counter is ``(i mod 2**32, i >> 32, m2, m3)``. There is
   no state to carry from one group to the next: any group can be drawn on its own. That is
   why the draw can run in parallel, or on a GPU, and still give the one stream.

3. **Words to floats in [0, 1)** (TF's ``Uint32ToFloat`` and ``Uint64ToDouble``). Random
   mantissa bits under the exponent of 1.0 make a float in [1, 2); then 1 is subtracted::

       float32: u = float_from_bits(0x3F800000 | (w & 0x7FFFFF)) - 1                 one word each
       float64: u = double_from_bits(0x3FF << 52 | (w0 & 0xFFFFF) << 32 | w1) - 1    two words each

   So ``u`` is a multiple of 2**-23 (2**-52), and never 1. The values fill the shape in
   row-major order: four float32 values (two float64 values) per group, the last group cut short.

**Keras's seeds** (``keras.random.SeedGenerator``). A layer made with ``seed`` keeps the state
``[seed, 0]``. At each draw it hands TF that state modulo ``2**31 - 2`` (Keras's
``_cast_seed``: TF's stateless ops want int32 seeds), then adds ``[0, 1]``. ``SeedGenerator``
below does the same. With no seed, Keras picks ``random.randint(1, 10**9)``, and so does this one.

Every function takes ``xp``, the array module (NumPy or CuPy). On CuPy the words are computed
on the device, with the same array code. ``philox_fast`` draws a dropout mask from the same
words, compiled (numba), for NumPy; ``parity_tests/test_philox.py`` checks both against TF.
"""

import random

import numpy as np

#: Philox4x32's two round multipliers and its two key bumps (the golden ratio and sqrt(3) - 1).
MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
KEY_BUMPS = (0x9E3779B9, 0xBB67AE85)
#: The key TF scrambles a seed with (``random::PhiloxRandom`` in ``GenerateKey``).
SEED_SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)
#: Keras's seeds reach TF modulo this (``tf.int32.max - 1``).
KERAS_SEED_MODULUS = 2**31 - 2
#: Values drawn per Philox call (group): four float32 (a word each), two float64 (two words each).
PER_GROUP = {np.dtype(np.float32): 4, np.dtype(np.float64): 2}

_WORD = 0xFFFFFFFF


def _mulhilo(multiplier, word):
    """The 64-bit product ``multiplier * word`` of uint32 values, as its (high, low) halves."""
    product = word.astype(np.uint64) * np.uint64(multiplier)  # the array first: CuPy's operator runs
    return (product >> np.uint64(32)).astype(np.uint32), (product & np.uint64(_WORD)).astype(np.uint32)


def philox4x32(counter, key):
    """Ten Philox rounds: a counter of four uint32 arrays and a key of two ints -> four uint32 arrays."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        hi0, lo0 = _mulhilo(MULTIPLIERS[0], c0)
        hi1, lo1 = _mulhilo(MULTIPLIERS[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint32(k0), lo1, hi0 ^ c3 ^ np.uint32(k1), lo0
        k0, k1 = (k0 + KEY_BUMPS[0]) & _WORD, (k1 + KEY_BUMPS[1]) & _WORD
    return c0, c1, c2, c3


def key_counter(seed):
    """TF's key ``(m0, m1)`` and counter words ``(m2, m3)`` for a seed pair (two ints), as ints."""
    s0, s1 = (int(s) & 0xFFFFFFFFFFFFFFFF for s in seed)  # an int32 -> uint64 sign-extends
    words = [np.array([w], np.uint32) for w in (s0 & _WORD, s0 >> 32, s1 & _WORD, s1 >> 32)]
    m0, m1, m2, m3 = (int(w[0]) for w in philox4x32(words, SEED_SCRAMBLE_KEY))
    return (m0, m1), (m2, m3)


def random_words(groups, seed, xp=np):
    """The four uint32 words of each of ``groups`` Philox calls, in order: shape ``(groups * 4,)``."""
    key, (m2, m3) = key_counter(seed)
    i = xp.arange(groups, dtype=np.uint64)
    counter = ((i & np.uint64(_WORD)).astype(np.uint32), (i >> np.uint64(32)).astype(np.uint32),
               xp.full(groups, m2, np.uint32), xp.full(groups, m3, np.uint32))
    return xp.stack(philox4x32(counter, key), axis=-1).reshape(-1)  # group 0's four words, then group 1's


def stateless_uniform(shape, seed, dtype=np.float32, xp=np):
    """``tf.random.stateless_uniform(shape, seed, dtype)``: floats in [0, 1), TF's bits.

    ``seed`` is a pair of ints (TF's int32 seed tensor); ``dtype`` float32 or float64.
    """
    dtype = np.dtype(dtype)
    if dtype not in PER_GROUP:
        raise TypeError(f"stateless_uniform draws float32 or float64; got dtype={dtype}")
    if (not isinstance(seed, (tuple, list)) or len(seed) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seed)):
        raise TypeError(f"`seed` must be a pair of ints (TF's seed tensor); got seed={seed!r}")
    if not isinstance(shape, (tuple, list)) or not all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape):
        raise ValueError(f"`shape` must be a sequence of non-negative ints; got shape={shape!r}")
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape, dtype=np.int64))
    words = random_words(-(-n // PER_GROUP[dtype]), seed, xp)
    if dtype == np.float32:  # [1, 2) from 23 random bits, minus 1
        one_to_two = ((words & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)).view(np.float32)
        u = one_to_two - np.float32(1)
    else:  # 20 bits of the first word and 32 of the second, under 1.0's exponent
        w0, w1 = words[0::2].astype(np.uint64), words[1::2].astype(np.uint64)
        one_to_two = ((w0 & np.uint64(0xFFFFF)) << np.uint64(32)) | w1 | np.uint64(0x3FF << 52)
        u = one_to_two.view(np.float64) - np.float64(1)
    return u[:n].reshape(shape)


class SeedGenerator:
    """Keras's ``SeedGenerator``: the state ``[seed, counter]``; ``next()`` gives TF's seed pair.

    >>> seeds = SeedGenerator(7)
    >>> seeds.next(), seeds.next(), seeds.state
    ((7, 0), (7, 1), [7, 2])
    """

    def __init__(self, seed=None):
        if seed is None:
            seed = random.randint(1, 10**9)  # Keras's make_default_seed
        if not isinstance(seed, int):  # Keras's check (True passes it, as 1)
            raise ValueError(f"Argument `seed` must be an integer. Received: seed={seed!r}")  # noqa: TRY004 (Keras's type)
        self.state = [int(seed), 0]

    def next(self):
        """The seed pair of this draw (the state modulo ``2**31 - 2``); then count one draw."""
        pair = tuple(s % KERAS_SEED_MODULUS for s in self.state)
        self.state[1] += 1
        return pair
