"""Build the router evaluation set's generated part (recipes/data/router/prompts.jsonl).

    python tools/build_router_set.py [--check]

The first 100 items (ids ending -01 .. -25) were written by hand and are kept as they are; this script
appends the rest (ids from -101) from the tables below, written for edgekit (CC0), with numbers drawn
from a fixed seed. Rerunning it gives the same file; ``--check`` fails when the file differs from it.
Sanity rules enforced here: unique ids and prompts, and no fact or translation answer already appears
in its prompt (an echo of the question must not count as right).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

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
    ("What is the largest mammal on Earth?", "any", ["whale"]),
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


def _args_pattern(params: str) -> str:
    return r"\s*,\s*".join(re.escape(p.strip()) for p in params.split(","))


def _number(value: int) -> dict[str, object]:
    return {"type": "number", "value": value}


def _word(value: str) -> dict[str, object]:
    return {"type": "word", "values": [value.lower()]}


def _any(values: list[str]) -> dict[str, object]:
    return {"type": "any", "values": values}


def _regex(pattern: str) -> dict[str, object]:
    return {"type": "regex", "pattern": pattern}


def generated(taken: set[str]) -> list[dict[str, object]]:
    """The generated items; ``taken``: prompts already in the set (never repeated)."""
    rng = random.Random(20261127)
    out: list[dict[str, object]] = []

    def add(category: str, prompt: str, check: dict[str, object]) -> bool:
        if prompt in taken:
            return False
        taken.add(prompt)
        n = 101 + sum(1 for o in out if o["category"] == category)
        out.append({"id": f"{category}-{n:02d}", "category": category, "prompt": prompt, "check": check})
        return True

    def draw(category: str, count: int, make: Callable[[], tuple[str, dict[str, object]]]) -> None:
        """Add ``count`` distinct items made from random numbers."""
        added = 0
        while added < count:
            added += add(category, *make())

    for country, capital in CAPITALS:
        add("fact", f"Which city is the capital of {country}? Answer briefly.", _any(capital))
    for question, kind, answer in FACTS:
        add("fact", f"{question} Answer briefly.", _number(answer) if kind == "number" else _any(answer))  # type: ignore[arg-type]

    only_number = "Reply with the number only."

    def arithmetic(low: int, high: int, ops: list[str]) -> Callable[[], tuple[str, dict[str, object]]]:
        def make() -> tuple[str, dict[str, object]]:
            a, b, op = rng.randint(low, high), rng.randint(low, high), rng.choice(ops)
            value = a + b if op == "plus" else a - b if op == "minus" else a * b
            return f"What is {a} {op} {b}? {only_number}", _number(value)

        return make

    draw("arithmetic", 15, arithmetic(1, 9, ["plus"]))
    draw("arithmetic", 30, arithmetic(10, 99, ["plus", "minus"]))
    draw("arithmetic", 10, arithmetic(2, 9, ["times"]))
    draw("arithmetic", 10, arithmetic(11, 99, ["times"]))

    for language, words in TRANSLATIONS.items():
        for english, answers in words:
            add(
                "translation",
                f"Translate '{english}' into {language}. Reply with the translation only.",
                _any(answers),
            )

    def ordering() -> tuple[str, dict[str, object]]:
        a, b, c = rng.sample(PEOPLE, 3)
        comparative, most, least = rng.choice(ORDERINGS)
        end = rng.choice([most, least])
        prompt = f"{a} is {comparative} than {b}. {b} is {comparative} than {c}. Who is the {end}?"
        return prompt, _word(a if end == most else c)

    def weekday() -> tuple[str, dict[str, object]]:
        day, n = rng.randrange(7), rng.randint(2, 12)
        prompt = f"If today is {DAYS[day]}, what day of the week will it be in {n} days?"
        return prompt, _word(DAYS[(day + n) % 7])

    def month() -> tuple[str, dict[str, object]]:
        m, n = rng.randrange(12), rng.randint(2, 6)
        return f"Which month comes {n} months after {MONTHS[m]}?", _word(MONTHS[(m + n) % 12])

    def sequence() -> tuple[str, dict[str, object]]:
        start, step = rng.randint(1, 20), rng.randint(2, 9)
        seq = ", ".join(str(start + step * k) for k in range(4))
        return f"What comes next in the sequence {seq}? {only_number}", _number(start + step * 4)

    def units() -> tuple[str, dict[str, object]]:
        (small, big, factor), n = rng.choice(UNITS), rng.randint(2, 9)
        return f"How many {small} are there in {n} {big}? {only_number}", _number(n * factor)

    def compare() -> tuple[str, dict[str, object]]:
        a, b = rng.sample(range(10, 100), 2)
        return f"Is {a} greater than {b}? Answer yes or no.", _word("yes" if a > b else "no")

    def apples() -> tuple[str, dict[str, object]]:
        name, a, b = rng.choice(PEOPLE), rng.randint(3, 20), rng.randint(2, 15)
        prompt = (
            f"{name} has {a} apples and buys {b} more. How many apples does {name} have now? {only_number}"
        )
        return prompt, _number(a + b)

    for make, count in (
        (ordering, 10),
        (weekday, 8),
        (month, 8),
        (sequence, 10),
        (units, 8),
        (compare, 8),
        (apples, 8),
    ):
        draw("reasoning", count, make)

    for name, params, does, body in PYTHON:
        pattern = rf"def\s+{name}\s*\(\s*{_args_pattern(params)}\s*\)[\s\S]*({body})"
        add(
            "code",
            f"Write a Python function named {name}({params}) that {does}. Only the code.",
            _regex(pattern),
        )
    for name, does, body in JAVASCRIPT:
        pattern = rf"(function\s+{name}\s*\(|(const|let|var)\s+{name}\s*=)[\s\S]*({body})"
        add("code", f"Write a JavaScript function named {name} that {does}. Only the code.", _regex(pattern))
    for does, pattern in SQL:
        add("code", f"Write a SQL query that {does}. Only the query.", _regex(pattern))
    for does, pattern in SHELL:
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
        if check["type"] == "regex":
            re.compile(check["pattern"])
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
