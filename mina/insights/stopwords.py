"""English function words and conversational filler, ignored when weighing content."""

from __future__ import annotations

_WORDS = """
a about above actually after again against ah all alright also am an and any anyone
anything are aren't as at basically be because been before being below between bit both but
by bye came can can't cannot come could couldn't day days did didn't do does doesn't doing
don't down during each er erm even ever everyone everything few fine first for from further
get go goes going gonna good got gotta great guess had hadn't has hasn't have haven't
having he he'd he'll he's hello her here here's hers herself hey hi him himself his hmm how
how's i i'd i'll i'm i've if in into is isn't it it's its itself just kind know last let
let's like little look looks lot lots made make makes many may maybe me mean might mm more
most much must mustn't my myself need needs next no nor not nothing now of off oh ok okay
on once one only or other ought our ours ourselves out over own pretty probably quite
really right said same say says second see seen shall shan't she she'd she'll she's should
shouldn't so some someone something sort still stuff such sure take tell than thank thanks
that that's the their theirs them themselves then there there's these they they'd they'll
they're they've thing things think this those three through time times to today told
tomorrow too two uh um under until up very wanna want wants was wasn't way we we'd we'll
we're we've week weeks well went were weren't what what's when when's where where's which
while who who's whom why why's will with won't would wouldn't yeah yep yes yesterday you
you'd you'll you're you've your yours yourself yourselves
morning afternoon evening welcome joining
"""

STOPWORDS = frozenset(_WORDS.split())
