"""Word lists of the rule-based language provider (kept apart so the rules stay readable)."""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split("|") if p.strip())


# Capitalized words that start sentences but never address a person ("So, can you ...").
NOT_NAMES = _words(
    """
    So Okay Ok Yes Yeah No Well Now And But Also Alright Right Great Thanks Thank Then This That
    It There We They He She You I Everyone Everybody Someone Somebody Nobody Who What Which Maybe
    Perhaps Sure Cool Good Fine Please Hey Hi Hello If When Next Today Tomorrow Team All Guys
    Folks The Our My Your Their His Her One Nothing Everything Anyone Sorry Actually Honestly Oh
    Ah Let Lets Could Can Would Will Should
    """
)

# Number words: "Five, five." read out or dialled is no one's name in address.
NUMBER_WORDS = _words(
    """
    Zero Oh One Two Three Four Five Six Seven Eight Nine Ten Eleven Twelve Thirteen Fourteen
    Fifteen Sixteen Seventeen Eighteen Nineteen Twenty Thirty Forty Fifty Sixty Seventy Eighty
    Ninety Hundred Thousand Million Billion First Second Third Fourth Fifth Sixth Seventh Eighth
    Ninth Tenth Half Quarter Double Triple Dozen
    """
)

# First words of an "action" that is meeting talk, not work ("can you hear me", "let's move on").
NON_ACTIONS = _phrases(
    """
    see | hear | think | guess | imagine | believe | understand | agree | say | tell you |
    remember | feel | bet | admit | assume | suppose | mean | be | not | never | repeat |
    explain | speak | mute | unmute | share your screen | share my screen | go back | move on |
    move to | start with | start by | begin with | talk | discuss | go over | go through |
    go to the next | go with | go around | get started | get going | wrap | recap | look at |
    hope | continue | keep going | jump | dive | kick off | focus | call it | pause | stop |
    switch | turn to | skip | take a look | take a step | take a break | do that | do it |
    do this | get back to the | circle back to the | probably | maybe | still | have a |
    give you | show you | walk you | let you know if | know | decide | take that | take it |
    take this | take care of it | do so | do the same | handle it | handle that | check it |
    look into it | sort it out | work on it | work it | get it | get that | need | have more |
    have less | have a lot | don't | do not | wait | hold on | hang on | bear with
    """
)

# Words after which a segment's sentence is still open ("... we need to").
DANGLING = _words(
    """
    a an the and or but to of in on at for with from by as is are was were be that which who if
    because so then than my your our their his her its we i you they it's we're i'm will would
    can could should about into like just very this these those not no
    """
)

# Names that are always capitalized (not "may" or "march": they are verbs too).
PROPER = _words(
    """
    monday tuesday wednesday thursday friday saturday sunday january february april june july
    august september october november december
    """
)

# Verbs after which a lower-case "ill" is ASR's spelling of "I'll".
ILL_VERBS = _words(
    """
    send do take check get be have make look follow write call email set update share review
    handle ping reach put prepare draft talk schedule fix try circle sync ask find go run let add
    book own pick start finish need
    """
)

# First words of an "action" that cannot start one: it is not a verb ("the budget", "ready").
NOT_VERBS = _words(
    """
    the a an this that these those our my your their his her its some any all more less very
    really not no so too there here it them him you we they i sure happy glad sorry fine good
    great ready able busy back out in on off at sometime someday soon later also probably
    definitely maybe going gonna been being done finished there's that's it's what when how
    """
)

# Words of a time, not of the work ("this afternoon", "first thing tomorrow").
TIME_WORDS = _words(
    """
    today tomorrow tonight morning afternoon evening night week weekend month year day days
    weeks months next end soon later asap now then first thing monday tuesday wednesday
    thursday friday saturday sunday eod eow
    """
)
