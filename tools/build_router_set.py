"""Build the router evaluation set's generated part (recipes/data/router/prompts.jsonl).

    python tools/build_router_set.py [--check]

The first 100 items (ids ending -01 .. -25) were written by hand and are kept as they are; this script
appends the rest (ids from -101) from the tables below, written for edgekit (CC0), with numbers drawn
from a fixed seed. Rerunning it gives the same file; ``--check`` fails when the file differs from it.
Sanity rules enforced here (on every item, the hand-written ones included): unique ids and prompts,
valid checks, no fact or translation answer already in its prompt, and the prompt alone fails its own
check (``is_correct(prompt, check)`` is False: an echo of the question must not count as right). Reasoning
generators give their checks ``reject`` lists: the candidates the prompt offers that are wrong (the other
names of an ordering, the opposite of a yes/no answer), so an answer must choose exactly one.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.cascade.evaluation import Item, is_correct

OUT = Path(__file__).resolve().parents[1] / "recipes" / "data" / "router" / "prompts.jsonl"
HAND_WRITTEN = 100

CAPITALS = [
    ("Germany", ["berlin"]), ("Spain", ["madrid"]), ("Portugal", ["lisbon", "lisboa"]),
    ("Egypt", ["cairo"]), ("Russia", ["moscow"]), ("China", ["beijing"]), ("India", ["new delhi"]),
    ("Brazil", ["brasília", "brasilia"]), ("Argentina", ["buenos aires"]), ("Sweden", ["stockholm"]),
    ("Finland", ["helsinki"]), ("Denmark", ["copenhagen"]), ("Poland", ["warsaw"]),
    ("Greece", ["athens"]), ("Turkey", ["ankara"]), ("Ireland", ["dublin"]),
    ("the Netherlands", ["amsterdam"]), ("Belgium", ["brussels"]), ("Austria", ["vienna"]),
    ("Switzerland", ["bern"]), ("Hungary", ["budapest"]), ("the Czech Republic", ["prague"]),
    ("South Korea", ["seoul"]), ("Thailand", ["bangkok"]), ("Vietnam", ["hanoi"]),
    ("Indonesia", ["jakarta"]), ("the Philippines", ["manila"]), ("Nigeria", ["abuja"]),
    ("Ethiopia", ["addis ababa"]), ("Morocco", ["rabat"]), ("Chile", ["santiago"]),
    ("Colombia", ["bogotá", "bogota"]), ("Venezuela", ["caracas"]), ("Cuba", ["havana"]),
    ("Iran", ["tehran"]), ("Iraq", ["baghdad"]), ("Saudi Arabia", ["riyadh"]),
    ("Pakistan", ["islamabad"]), ("New Zealand", ["wellington"]), ("Iceland", ["reykjavik", "reykjavík"]),
    ("the United Kingdom", ["london"]), ("Romania", ["bucharest"]), ("Bulgaria", ["sofia"]),
    ("Serbia", ["belgrade"]), ("Croatia", ["zagreb"]),
]  # fmt: skip

FACTS = [
    ("What is the atomic number of carbon?", "number", 6),
    ("What is the atomic number of oxygen?", "number", 8),
    ("What is the atomic number of helium?", "number", 2),
    ("How many legs does an insect have?", "any", ["6", "six"]),
    ("How many sides does a hexagon have?", "any", ["6", "six"]),
    ("What is the boiling point of water at sea level in degrees Celsius?", "number", 100),
    ("Which planet is closest to the Sun?", "any", ["mercury"]),
    ("What is the tallest mountain on Earth?", "any", ["everest"]),
    ("What is the chemical formula of water?", "any", ["h2o", "h₂o"]),
    ("Who developed the theory of relativity?", "any", ["einstein"]),
    ("Which language is mainly spoken in Brazil?", "any", ["portuguese"]),
    ("What is the currency of Japan?", "any", ["yen"]),
    ("What is the largest mammal on Earth?", "any", ["whale", "whales"]),
    ("How many hours are there in a day?", "number", 24),
    ("Which organ pumps blood through the human body?", "any", ["heart"]),
    ("Who was the first person to walk on the Moon?", "any", ["armstrong"]),
    ("On which continent is Egypt?", "any", ["africa"]),
    ("What is the largest continent by area?", "any", ["asia"]),
    ("What colour do you get by mixing blue and yellow paint?", "any", ["green"]),
    ("Who is credited with inventing the telephone?", "any", ["bell"]),
    ("Which planet is famous for its large rings?", "any", ["saturn"]),
    ("What is frozen water called?", "any", ["ice"]),
    ("Which musical instrument usually has 88 keys?", "any", ["piano"]),
    ("Which metal is liquid at room temperature?", "any", ["mercury"]),
    ("What is the main language spoken in Mexico?", "any", ["spanish"]),
]

TRANSLATIONS = {
    "French": [
        ("house", ["maison"]), ("dog", ["chien"]), ("car", ["voiture"]), ("tree", ["arbre"]),
        ("book", ["livre"]), ("red", ["rouge"]), ("cheese", ["fromage"]), ("window", ["fenêtre", "fenetre"]),
        ("city", ["ville"]), ("flower", ["fleur"]), ("bird", ["oiseau"]), ("horse", ["cheval"]),
        ("fish", ["poisson"]), ("sister", ["sœur", "soeur"]), ("woman", ["femme"]),
    ],
    "German": [
        ("cat", ["katze"]), ("tree", ["baum"]), ("book", ["buch"]), ("water", ["wasser"]),
        ("black", ["schwarz"]), ("cheese", ["käse", "kaese"]), ("window", ["fenster"]),
        ("friend", ["freund"]), ("city", ["stadt"]), ("mountain", ["berg"]), ("flower", ["blume"]),
        ("bird", ["vogel"]), ("horse", ["pferd"]), ("night", ["nacht"]), ("brother", ["bruder"]),
    ],
    "Spanish": [
        ("dog", ["perro"]), ("house", ["casa"]), ("book", ["libro"]), ("water", ["agua"]),
        ("cheese", ["queso"]), ("window", ["ventana"]), ("door", ["puerta"]), ("city", ["ciudad"]),
        ("flower", ["flor"]), ("horse", ["caballo"]), ("chair", ["silla"]), ("night", ["noche"]),
        ("sister", ["hermana"]), ("woman", ["mujer"]), ("man", ["hombre"]),
    ],
    "Italian": [
        ("cat", ["gatto"]), ("dog", ["cane"]), ("tree", ["albero"]), ("water", ["acqua"]),
        ("cheese", ["formaggio"]), ("window", ["finestra"]), ("door", ["porta"]),
        ("friend", ["amico", "amica"]), ("sea", ["mare"]), ("flower", ["fiore"]), ("bird", ["uccello"]),
        ("horse", ["cavallo"]), ("fish", ["pesce"]), ("sister", ["sorella"]), ("woman", ["donna"]),
    ],
}  # fmt: skip

PEOPLE = ["Ann", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gina", "Hugo", "Ida", "Jon", "Kim", "Leo"]
ORDERINGS = [
    ("taller", "tallest", "shortest"),
    ("older", "oldest", "youngest"),
    ("faster", "fastest", "slowest"),
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
UNITS = [
    ("minutes", "hours", 60), ("seconds", "minutes", 60), ("centimetres", "metres", 100),
    ("grams", "kilograms", 1000),
]  # fmt: skip
MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip

# (name, parameters, what it does, a regex the body must match)
PYTHON = [
    ("multiply", "a, b", "returns the product of a and b", r"return\s+a\s*\*\s*b"),
    ("is_odd", "n", "returns True when n is odd", r"%\s*2"),
    ("cube", "x", "returns x cubed", r"return\s+(x\s*\*\*\s*3|x\s*\*\s*x\s*\*\s*x|pow\(\s*x\s*,\s*3\s*\))"),
    ("minimum", "values", "returns the smallest item of a list", r"(min\(|<)"),
    ("average", "values", "returns the mean of a list of numbers", r"sum\(\s*values\s*\)\s*/\s*len\("),
    ("last", "items", "returns the last item of a list", r"items\s*\[\s*-\s*1\s*\]"),
    ("to_upper", "s", "returns s in upper case", r"\.upper\(\s*\)"),
    ("word_count", "s", "returns the number of words in s", r"len\(\s*s\.split\("),
    ("is_positive", "n", "returns True when n is greater than zero", r"n\s*>\s*0|0\s*<\s*n"),
    ("absolute", "x", "returns the absolute value of x", r"abs\(\s*x\s*\)|x\s*<\s*0|-\s*x"),
    ("sum_list", "values", "returns the sum of a list of numbers", r"sum\(\s*values\s*\)|\+="),
    ("contains", "items, x", "returns True when x is in the list items", r"x\s+in\s+items"),
    ("is_palindrome", "s", "returns True when s reads the same backwards", r"\[::-1\]|reversed\("),
    ("fibonacci", "n", "returns the n-th Fibonacci number", r"fibonacci\(\s*n\s*-\s*[12]\s*\)|a\s*\+\s*b"),
    (
        "remove_spaces",
        "s",
        "returns s without spaces",
        r"replace\(\s*['\"] ['\"]\s*,\s*['\"]['\"]\s*\)|split\(",
    ),
    ("count_items", "items", "returns the number of items in a list", r"len\(\s*items\s*\)"),
    ("half", "x", "returns x divided by two", r"x\s*/\s*2|x\s*\*\s*0\.5"),
    ("max_of_two", "a, b", "returns the larger of a and b", r"max\(\s*a\s*,\s*b\s*\)|a\s*>\s*b|b\s*>\s*a"),
    ("is_divisible", "a, b", "returns True when a is divisible by b", r"a\s*%\s*b\s*==\s*0"),
    (
        "char_count",
        "s, c",
        "returns how many times the character c appears in s",
        r"s\.count\(\s*c\s*\)|==\s*c",
    ),
    ("first_char", "s", "returns the first character of s", r"s\s*\[\s*0\s*\]"),
    ("square_all", "values", "returns a list of the squares of the numbers", r"\*\*\s*2|\*\s*\w+\s+for"),
    ("greet", "name", "returns 'Hello, ' followed by name", r"Hello"),
    (
        "is_empty",
        "s",
        "returns True when the string s is empty",
        r"len\(\s*s\s*\)\s*==\s*0|not\s+s|==\s*['\"]['\"]",
    ),
    ("double_all", "values", "returns a list with every number doubled", r"\*\s*2|2\s*\*"),
]

JAVASCRIPT = [
    ("triple", "returns its argument times three", r"\*\s*3"),
    ("isEven", "returns true when its argument is even", r"%\s*2"),
    ("greet", "returns 'Hello, ' followed by its argument", r"Hello"),
    ("square", "returns its argument squared", r"\*\*\s*2|(\w+)\s*\*\s*\1|Math\.pow"),
    ("lastItem", "returns the last element of an array", r"length\s*-\s*1|\.at\(\s*-1\s*\)"),
    ("sum", "returns the sum of two numbers a and b", r"a\s*\+\s*b"),
    ("toUpper", "returns its string argument in upper case", r"toUpperCase\(\s*\)"),
    ("isEmpty", "returns true when an array is empty", r"length\s*===?\s*0|!\s*\w+\.length"),
]

SQL = [
    ("selects the name column from a table named customers", r"(?i)select\s+name\s+from\s+customers"),
    ("counts the rows in a table named orders", r"(?i)select\s+count\(\s*(\*|1)\s*\)\s+from\s+orders"),
    ("deletes all rows from a table named logs", r"(?i)delete\s+from\s+logs|truncate\s+(table\s+)?logs"),
    (
        "selects all columns from a table named products where price is greater than 10",
        r"(?i)select\s+\*\s+from\s+products\s+where\s+price\s*>\s*10",
    ),
    (
        "selects all columns from a table named employees, highest salary first",
        r"(?i)select\s+\*\s+from\s+employees\s+order\s+by\s+salary\s+desc",
    ),
    (
        "selects the distinct city values from a table named customers",
        r"(?i)select\s+distinct\s+city\s+from\s+customers",
    ),
]

SHELL = [
    ("lists all files in the current directory, hidden ones included", r"ls\s+-\w*a"),
    ("prints the current working directory", r"\bpwd\b"),
    ("creates a directory named backup", r"mkdir\s+(-p\s+)?backup"),
    ("shows the first 10 lines of a file named log.txt", r"head\s+(-n\s*10\s+|-10\s+)?log\.txt"),
    ("searches for the word error in a file named app.log", r"grep\s+(-\w+\s+)*['\"]?error['\"]?\s+app\.log"),
    ("copies a file named a.txt to b.txt", r"cp\s+a\.txt\s+b\.txt"),
    ("removes a file named old.txt", r"rm\s+(-f\s+)?old\.txt"),
]


# Second batch (built after the first, so the first batch's ids and prompts stay as they were).
CAPITALS_2 = [
    ("Ukraine", ["kyiv", "kiev"]), ("Nepal", ["kathmandu"]), ("Bangladesh", ["dhaka"]),
    ("Malaysia", ["kuala lumpur"]), ("Afghanistan", ["kabul"]), ("Syria", ["damascus"]),
    ("Jordan", ["amman"]), ("Lebanon", ["beirut"]), ("Qatar", ["doha"]), ("Ghana", ["accra"]),
    ("Senegal", ["dakar"]), ("Uganda", ["kampala"]), ("Zimbabwe", ["harare"]), ("Zambia", ["lusaka"]),
    ("Angola", ["luanda"]), ("Algeria", ["algiers"]), ("Libya", ["tripoli"]), ("Sudan", ["khartoum"]),
    ("Ecuador", ["quito"]), ("Uruguay", ["montevideo"]), ("Paraguay", ["asunción", "asuncion"]),
    ("Jamaica", ["kingston"]), ("Estonia", ["tallinn"]), ("Latvia", ["riga"]), ("Lithuania", ["vilnius"]),
    ("Slovakia", ["bratislava"]), ("Slovenia", ["ljubljana"]), ("Albania", ["tirana"]),
    ("Cyprus", ["nicosia"]), ("Malta", ["valletta"]), ("Mongolia", ["ulaanbaatar", "ulan bator"]),
    ("North Korea", ["pyongyang"]), ("Cambodia", ["phnom penh"]), ("Laos", ["vientiane"]),
    ("Wales", ["cardiff"]), ("Scotland", ["edinburgh"]), ("Costa Rica", ["san josé", "san jose"]),
    ("Panama", ["panama city"]), ("Kazakhstan", ["astana"]), ("Georgia (the country)", ["tbilisi"]),
]  # fmt: skip

FACTS_2 = [
    ("How many days are there in a leap year?", "number", 366),
    ("How many planets are there in our solar system?", "any", ["8", "eight"]),
    ("In which year did the Second World War end?", "number", 1945),
    ("In which year did people first land on the Moon?", "number", 1969),
    ("How many bones are there in the adult human body?", "number", 206),
    ("Who wrote the novel Pride and Prejudice?", "any", ["austen"]),
    ("Who wrote the novel Nineteen Eighty-Four?", "any", ["orwell"]),
    ("Who painted The Starry Night?", "any", ["van gogh", "gogh"]),
    ("Who discovered penicillin?", "any", ["fleming"]),
    ("Who proposed the theory of evolution by natural selection?", "any", ["darwin"]),
    ("Which gas makes up most of the Earth's atmosphere?", "any", ["nitrogen"]),
    ("What is the largest organ of the human body?", "any", ["skin"]),
    ("What is the chemical symbol for iron?", "word", ["fe"]),
    ("What is the chemical symbol for silver?", "word", ["ag"]),
    ("What is the chemical symbol for copper?", "word", ["cu"]),
    ("What is the chemical symbol for lead?", "word", ["pb"]),
    ("What is the chemical symbol for zinc?", "word", ["zn"]),
    ("Which planet is the largest in our solar system after Jupiter?", "any", ["saturn"]),
    ("What is the smallest planet in our solar system?", "any", ["mercury"]),
    ("Which ocean lies between Europe and North America?", "any", ["atlantic"]),
]

TRANSLATIONS_2 = {
    "French": [
        ("sun", ["soleil"]), ("star", ["étoile", "etoile"]), ("sky", ["ciel"]), ("rain", ["pluie"]),
        ("snow", ["neige"]), ("fire", ["feu"]), ("boy", ["garçon", "garcon"]), ("girl", ["fille"]),
        ("blue", ["bleu"]), ("green", ["vert"]), ("chair", ["chaise"]), ("kitchen", ["cuisine"]),
        ("garden", ["jardin"]), ("cow", ["vache"]), ("mouse", ["souris"]),
    ],
    "German": [
        ("sun", ["sonne"]), ("moon", ["mond"]), ("star", ["stern"]), ("sky", ["himmel"]),
        ("rain", ["regen"]), ("snow", ["schnee"]), ("fire", ["feuer"]), ("girl", ["mädchen", "maedchen"]),
        ("blue", ["blau"]), ("green", ["grün", "gruen"]), ("chair", ["stuhl"]),
        ("kitchen", ["küche", "kueche"]), ("garden", ["garten"]), ("cow", ["kuh"]), ("mouse", ["maus"]),
    ],
    "Spanish": [
        ("moon", ["luna"]), ("star", ["estrella"]), ("sky", ["cielo"]), ("rain", ["lluvia"]),
        ("snow", ["nieve"]), ("fire", ["fuego"]), ("blue", ["azul"]), ("green", ["verde"]),
        ("kitchen", ["cocina"]), ("garden", ["jardín", "jardin"]), ("cow", ["vaca"]), ("egg", ["huevo"]),
        ("mouse", ["ratón", "raton"]), ("milk", ["leche"]), ("bird", ["pájaro", "pajaro"]),
    ],
    "Italian": [
        ("sun", ["sole"]), ("moon", ["luna"]), ("star", ["stella"]), ("sky", ["cielo"]),
        ("rain", ["pioggia"]), ("snow", ["neve"]), ("fire", ["fuoco"]), ("boy", ["ragazzo"]),
        ("girl", ["ragazza"]), ("green", ["verde"]), ("kitchen", ["cucina"]), ("garden", ["giardino"]),
        ("egg", ["uovo"]), ("bread", ["pane"]), ("milk", ["latte"]),
    ],
}  # fmt: skip

PYTHON_2 = [
    ("subtract", "a, b", "returns a minus b", r"return\s+a\s*-\s*b"),
    ("is_negative", "n", "returns True when n is less than zero", r"n\s*<\s*0|0\s*>\s*n"),
    ("to_lower", "s", "returns s in lower case", r"\.lower\(\s*\)"),
    ("string_length", "s", "returns the number of characters in s", r"len\(\s*s\s*\)"),
    ("join_words", "words", "joins a list of words with spaces", r"['\"] ['\"]\.join\(\s*words\s*\)"),
    ("count_evens", "values", "returns how many numbers in the list are even", r"%\s*2"),
    ("capitalize_first", "s", "returns s with its first letter in upper case", r"capitalize\(|upper\("),
    ("product", "values", "returns the product of a list of numbers", r"\*=|prod\(|reduce\("),
    ("is_vowel", "c", "returns True when the character c is a vowel", r"aeiou|'a'|\"a\""),
    ("repeat", "s, n", "returns the string s repeated n times", r"s\s*\*\s*n|n\s*\*\s*s"),
    ("second", "items", "returns the second item of a list", r"items\s*\[\s*1\s*\]"),
    ("clamp", "x, low, high", "limits x to the range from low to high", r"max\(|min\(|<\s*low|>\s*high"),
]

JAVASCRIPT_2 = [
    ("negate", "returns its argument times minus one", r"-\s*\w+|\*\s*-\s*1"),
    ("firstItem", "returns the first element of an array", r"\[\s*0\s*\]"),
    ("toLower", "returns its string argument in lower case", r"toLowerCase\(\s*\)"),
    ("isPositive", "returns true when its argument is greater than zero", r">\s*0"),
]

SQL_2 = [
    ("selects all columns from a table named orders", r"(?i)select\s+\*\s+from\s+orders"),
    ("counts the rows in a table named customers", r"(?i)select\s+count\(\s*(\*|1)\s*\)\s+from\s+customers"),
    ("selects the email column from a table named users", r"(?i)select\s+email\s+from\s+users"),
    (
        "selects all columns from a table named products, cheapest first",
        r"(?i)select\s+\*\s+from\s+products\s+order\s+by\s+price(\s+asc)?\b",
    ),
]

SHELL_2 = [
    ("shows the last 20 lines of a file named app.log", r"tail\s+(-n\s*20|-20)\s+app\.log"),
    ("counts the words in a file named notes.txt", r"wc\s+-w\s+(<\s*)?notes\.txt"),
    ("moves a file named a.txt to a directory named archive", r"mv\s+a\.txt\s+archive/?"),
    ("prints the text hello world", r"(echo|printf)\s+['\"]?hello world"),
]


def _args_pattern(params: str) -> str:
    return r"\s*,\s*".join(re.escape(p.strip()) for p in params.split(","))


def _number(value: int) -> dict[str, object]:
    return {"type": "number", "value": value}


def _word(value: str, reject: list[str] | None = None) -> dict[str, object]:
    return _words([value], reject)


def _words(values: list[str], reject: list[str] | None = None) -> dict[str, object]:
    check: dict[str, object] = {"type": "word", "values": [v.lower() for v in values]}
    if reject:
        check["reject"] = [r.lower() for r in reject]
    return check


def _any(values: list[str]) -> dict[str, object]:
    return {"type": "any", "values": values}


def _fact_check(kind: str, answer: object) -> dict[str, object]:
    if kind == "number":
        return _number(answer)  # type: ignore[arg-type]
    return (_any if kind == "any" else _words)(answer)  # type: ignore[arg-type]


def _regex(pattern: str) -> dict[str, object]:
    return {"type": "regex", "pattern": pattern}


@dataclass(frozen=True)
class Batch:
    capitals: list[tuple[str, list[str]]]
    facts: list[tuple[str, str, Any]]
    arithmetic: list[tuple[int, int, int, list[str]]]
    """(count, low, high, operations) per draw."""
    translations: dict[str, list[tuple[str, list[str]]]]
    reasoning: list[tuple[str, int]]
    """(generator name, count) per draw."""
    python: list[tuple[str, str, str, str]]
    javascript: list[tuple[str, str, str]]
    sql: list[tuple[str, str]]
    shell: list[tuple[str, str]]


BATCHES = [
    Batch(
        CAPITALS, FACTS,
        [(15, 1, 9, ["plus"]), (30, 10, 99, ["plus", "minus"]), (10, 2, 9, ["times"]),
         (10, 11, 99, ["times"])],
        TRANSLATIONS,
        [("ordering", 10), ("weekday", 8), ("month", 8), ("sequence", 10), ("units", 8), ("compare", 8),
         ("apples", 8)],
        PYTHON, JAVASCRIPT, SQL, SHELL,
    ),
    Batch(
        CAPITALS_2, FACTS_2,
        [(15, 1, 9, ["plus", "minus"]), (25, 10, 99, ["plus", "minus"]), (10, 2, 12, ["times"]),
         (10, 11, 99, ["times"])],
        TRANSLATIONS_2,
        [("ordering", 12), ("weekday", 8), ("month", 8), ("sequence", 12), ("units", 8), ("compare", 6),
         ("apples", 6)],
        PYTHON_2, JAVASCRIPT_2, SQL_2, SHELL_2,
    ),
]  # fmt: skip


def generated(taken: set[str]) -> list[dict[str, object]]:
    """The generated items, batch after batch; ``taken``: prompts already in the set (never repeated)."""
    rng = random.Random(20261127)
    out: list[dict[str, object]] = []
    only_number = "Reply with the number only."
    Made = tuple[str, dict[str, object]]

    def add(category: str, prompt: str, check: dict[str, object]) -> bool:
        if prompt in taken:
            return False
        taken.add(prompt)
        n = 101 + sum(1 for o in out if o["category"] == category)
        out.append({"id": f"{category}-{n:02d}", "category": category, "prompt": prompt, "check": check})
        return True

    def draw(category: str, count: int, make: Callable[[], Made]) -> None:
        """Add ``count`` distinct items made from random numbers."""
        added = 0
        while added < count:
            added += add(category, *make())

    def arithmetic(low: int, high: int, ops: list[str]) -> Callable[[], Made]:
        def make() -> Made:
            a, b, op = rng.randint(low, high), rng.randint(low, high), rng.choice(ops)
            value = a + b if op == "plus" else a - b if op == "minus" else a * b
            return f"What is {a} {op} {b}? {only_number}", _number(value)

        return make

    def ordering() -> Made:
        a, b, c = rng.sample(PEOPLE, 3)
        comparative, most, least = rng.choice(ORDERINGS)
        end = rng.choice([most, least])
        prompt = f"{a} is {comparative} than {b}. {b} is {comparative} than {c}. Who is the {end}?"
        right = a if end == most else c
        return prompt, _word(right, [p for p in (a, b, c) if p != right])

    def weekday() -> Made:
        day, n = rng.randrange(7), rng.randint(2, 12)
        prompt = f"If today is {DAYS[day]}, what day of the week will it be in {n} days?"
        # In 7 days the answer is the day the prompt names: restating the premise is not choosing it.
        return prompt, _word(DAYS[(day + n) % 7], [f"today is {DAYS[day]}"] if n % 7 == 0 else None)

    def month() -> Made:
        m, n = rng.randrange(12), rng.randint(2, 6)
        return f"Which month comes {n} months after {MONTHS[m]}?", _word(MONTHS[(m + n) % 12])

    def sequence() -> Made:
        start, step = rng.randint(1, 20), rng.randint(2, 9)
        seq = ", ".join(str(start + step * k) for k in range(4))
        return f"What comes next in the sequence {seq}? {only_number}", _number(start + step * 4)

    def units() -> Made:
        (small, big, factor), n = rng.choice(UNITS), rng.randint(2, 9)
        return f"How many {small} are there in {n} {big}? {only_number}", _number(n * factor)

    def compare() -> Made:
        a, b = rng.sample(range(10, 100), 2)
        right, wrong = ("yes", "no") if a > b else ("no", "yes")
        return f"Is {a} greater than {b}? Answer yes or no.", _word(right, [wrong])

    def apples() -> Made:
        name, a, b = rng.choice(PEOPLE), rng.randint(3, 20), rng.randint(2, 15)
        prompt = (
            f"{name} has {a} apples and buys {b} more. How many apples does {name} have now? {only_number}"
        )
        return prompt, _number(a + b)

    reasoning = {f.__name__: f for f in (ordering, weekday, month, sequence, units, compare, apples)}
    for batch in BATCHES:
        for country, capital in batch.capitals:
            add("fact", f"Which city is the capital of {country}? Answer briefly.", _any(capital))
        for question, kind, answer in batch.facts:
            add("fact", f"{question} Answer briefly.", _fact_check(kind, answer))
        for count, low, high, ops in batch.arithmetic:
            draw("arithmetic", count, arithmetic(low, high, ops))
        for language, words in batch.translations.items():
            for english, answers in words:
                prompt = f"Translate '{english}' into {language}. Reply with the translation only."
                add("translation", prompt, _any(answers))
        for name, count in batch.reasoning:
            draw("reasoning", count, reasoning[name])
        for name, params, does, body in batch.python:
            pattern = rf"def\s+{name}\s*\(\s*{_args_pattern(params)}\s*\)[\s\S]*({body})"
            prompt = f"Write a Python function named {name}({params}) that {does}. Only the code."
            add("code", prompt, _regex(pattern))
        for name, does, body in batch.javascript:
            pattern = rf"(function\s+{name}\s*\(|(const|let|var)\s+{name}\s*=)[\s\S]*({body})"
            add(
                "code",
                f"Write a JavaScript function named {name} that {does}. Only the code.",
                _regex(pattern),
            )
        for does, pattern in batch.sql:
            add("code", f"Write a SQL query that {does}. Only the query.", _regex(pattern))
        for does, pattern in batch.shell:
            add("code", f"Write a shell command that {does}. Only the command.", _regex(pattern))
    return out


def build() -> str:
    hand = OUT.read_text(encoding="utf-8").splitlines()[:HAND_WRITTEN]
    written = [json.loads(line) for line in hand]
    items = written + generated({str(i["prompt"]) for i in written})
    ids = [i["id"] for i in items]
    prompts = [i["prompt"] for i in items]
    if len(set(ids)) != len(ids) or len(set(prompts)) != len(prompts):
        raise SystemExit("duplicate ids or prompts")
    for item in items[HAND_WRITTEN:]:
        check = item["check"]
        if item["category"] in ("fact", "translation") and check["type"] == "any":
            echoed = [v for v in check["values"] if v in str(item["prompt"]).lower()]
            if echoed:
                raise SystemExit(f"{item['id']}: answer {echoed} appears in the prompt")
    echoes = []
    for raw in items:
        try:
            parsed = Item.model_validate(raw)
            if parsed.check.type == "regex":
                re.compile(parsed.check.pattern or "")
        except (ValueError, re.error) as e:
            why = "; ".join(line.strip() for line in str(e).splitlines()[1:3]) or str(e)
            raise SystemExit(f"{raw['id']}: bad item: {why}") from None
        if is_correct(parsed.prompt, parsed.check):
            echoes.append(parsed.id)
    if echoes:
        raise SystemExit(
            f"the prompt alone passes its own check (an echo would count as right): {', '.join(echoes)}; "
            "add the prompt's wrong candidates to the check's reject list, or tighten the check"
        )
    return "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="Fail when the file differs from what is built.")
    args = ap.parse_args()
    text = build()
    if args.check:
        same = OUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{OUT} differs: run tools/build_router_set.py")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"{OUT}: {text.count(chr(10))} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
