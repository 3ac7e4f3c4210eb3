"""Build recipes/data/calibration/structured.jsonl: structured-output and tool-call conversations.

The hand-written files next to it cover free chat, hard cases, refusals and clarifications; this script
writes the structured part from invented names, places and values (seeded, so the file is reproducible):
JSON extraction against a schema, intent classification, and tool calls with the tool's result and the
final answer. Every word of it comes from this file. Run from the repository root:

    python tools/build_calibration.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "recipes" / "data" / "calibration" / "structured.jsonl"

FIRST = [
    "Amara",
    "Bruno",
    "Chen",
    "Dalia",
    "Emeka",
    "Freya",
    "Goran",
    "Hana",
    "Ivo",
    "Jasmin",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Oskar",
    "Pilar",
    "Quentin",
    "Rania",
    "Stellan",
    "Tomoko",
    "Ulla",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zofia",
]
LAST = [
    "Abara",
    "Brandt",
    "Castellano",
    "Dimitrov",
    "Eriksen",
    "Fontaine",
    "Gupta",
    "Horvath",
    "Ilunga",
    "Jovanovic",
    "Kowalczyk",
    "Lindqvist",
    "Moreau",
    "Nakagawa",
    "Oyelaran",
    "Petrescu",
    "Quispe",
    "Rasmussen",
    "Silva",
    "Takeda",
    "Umarov",
    "Varga",
    "Whitlock",
    "Yilmaz",
    "Zeller",
]
CITIES = [
    "Porto",
    "Tromsø",
    "Valparaíso",
    "Kraków",
    "Nairobi",
    "Osaka",
    "Ghent",
    "Tbilisi",
    "Hobart",
    "Montevideo",
    "Ljubljana",
    "Da Nang",
    "Halifax",
    "Tallinn",
    "Arequipa",
    "Bergen",
    "Izmir",
]
PRODUCTS = [
    ("standing desk frame", 289.0),
    ("noise-cancelling headset", 149.5),
    ("cast-iron skillet", 42.0),
    ("trail running shoes", 118.0),
    ("e-reader", 129.99),
    ("espresso grinder", 215.0),
    ("yoga mat", 34.9),
    ("bike pump", 27.5),
    ("mechanical keyboard", 96.0),
    ("rain shell", 175.0),
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
CURRENCIES = ["EUR", "USD", "GBP", "JPY", "CHF", "SEK", "BRL", "INR"]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_forecast",
            "description": "Weather forecast for a city on a given day.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "day": {"type": "string", "description": "ISO date"},
                    "units": {"type": "string", "enum": ["metric", "imperial"]},
                },
                "required": ["city", "day"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "create_event",
            "description": "Add an event to the user's calendar.",
            "parameters": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "start": {"type": "string", "description": "ISO datetime"},
                    "duration_min": {"type": "integer", "minimum": 5},
                    "attendees": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["title", "start"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "convert_currency",
            "description": "Convert an amount between currencies at today's rate.",
            "parameters": {
                "type": "object",
                "properties": {
                    "amount": {"type": "number"},
                    "from": {"type": "string"},
                    "to": {"type": "string"},
                },
                "required": ["amount", "from", "to"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "set_timer",
            "description": "Start a countdown timer on the device.",
            "parameters": {
                "type": "object",
                "properties": {"seconds": {"type": "integer", "minimum": 1}, "label": {"type": "string"}},
                "required": ["seconds"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "find_contact",
            "description": "Search the address book.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    },
]


def system_with_tools(tools: list[dict]) -> str:
    return (
        "You can call functions. To call one, answer with a single line "
        '<tool_call>{"name": ..., "arguments": {...}}</tool_call> and nothing else. Available functions:\n'
        + "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    )


def person(r: random.Random) -> str:
    return f"{r.choice(FIRST)} {r.choice(LAST)}"


def date(r: random.Random) -> tuple[str, str]:
    m, d = r.randrange(12), r.randint(1, 28)
    return f"2025-{m + 1:02d}-{d:02d}", f"{d} {MONTHS[m]}"


def call(name: str, args: dict) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}, ensure_ascii=False) + "</tool_call>"


def tool_forecast(r: random.Random) -> dict:
    city = r.choice(CITIES)
    iso, human = date(r)
    imperial = r.random() < 0.3
    asks = [
        f"will it rain in {city} on {human}?",
        f"Whats the weather going to be like in {city} on {human}",
        f"Do I need a jacket in {city} on {human}? Give me Fahrenheit"
        if imperial
        else f"Forecast for {city}, {human}, please.",
    ]
    args = {"city": city, "day": iso, "units": "imperial" if imperial else "metric"}
    hi = r.randint(-3, 31)
    rain = r.randint(0, 100)
    temp = f"{round(hi * 9 / 5 + 32)} °F" if imperial else f"{hi} °C"
    result = {"city": city, "day": iso, "high": temp, "rain_chance": rain / 100, "wind_kmh": r.randint(2, 45)}
    verdict = (
        "Take an umbrella." if rain > 55 else "Rain looks unlikely." if rain < 25 else "Rain is possible."
    )
    return {
        "tools": [TOOLS[0]],
        "user": r.choice(asks),
        "call": call("get_forecast", args),
        "result": result,
        "final": f"{city} on {human}: a high of {temp}, with a {rain}% chance of rain "
        f"and wind around {result['wind_kmh']} km/h. {verdict}",
    }


def tool_event(r: random.Random) -> dict:
    who = [person(r) for _ in range(r.randint(1, 3))]
    iso, human = date(r)
    hour = r.choice([9, 10, 11, 13, 14, 15, 16])
    title = r.choice(
        [
            "Quarterly planning",
            "Design review",
            "Dentist",
            "Lunch",
            "1:1",
            "Budget sync",
            "Onboarding call",
            "Kitchen renovation quote",
        ]
    )
    minutes = r.choice([15, 30, 45, 60, 90])
    user = r.choice(
        [
            f"put '{title}' in my calendar on {human} at {hour}:00 with {' and '.join(who)}, {minutes} min",
            f"Schedule {title.lower()} for {human}, {hour}h, {minutes} minutes. Invite {', '.join(who)}.",
            f"can you add {title} on {human} at {hour} o'clock for {minutes} minutes w/ {who[0]}",
        ]
    )
    attendees = who if "w/" not in user else who[:1]
    args = {
        "title": title,
        "start": f"{iso}T{hour:02d}:00:00",
        "duration_min": minutes,
        "attendees": attendees,
    }
    result = {"status": "created", "event_id": f"evt_{r.randrange(16**8):08x}"}
    return {
        "tools": [TOOLS[1], TOOLS[4]],
        "user": user,
        "call": call("create_event", args),
        "result": result,
        "final": f'Done: "{title}" is in your calendar on {human} from {hour}:00 for {minutes} minutes, '
        f"with {', '.join(attendees)} invited.",
    }


def tool_currency(r: random.Random) -> dict:
    a, b = r.sample(CURRENCIES, 2)
    amount = r.choice([12, 45.5, 100, 250, 1200, 3999.99, 75])
    rate = round(r.uniform(0.05, 160.0), 4)
    user = r.choice(
        [
            f"how much is {amount} {a} in {b}",
            f"Convert {amount} {a} to {b} pls",
            f"I have {amount} {a}. What's that in {b} today?",
        ]
    )
    result = {"amount": amount, "from": a, "to": b, "rate": rate, "converted": round(amount * rate, 2)}
    return {
        "tools": [TOOLS[2]],
        "user": user,
        "call": call("convert_currency", {"amount": amount, "from": a, "to": b}),
        "result": result,
        "final": f"{amount} {a} is about {result['converted']:,} {b} at today's rate "
        f"of {rate}. Banks and card providers usually add a fee of 1 to 3% on top.",
    }


def tool_timer(r: random.Random) -> dict:
    minutes = r.choice([3, 5, 8, 12, 20, 25, 45])
    label = r.choice(["pasta", "tea", "laundry", "focus block", "bread proofing", "eggs"])
    user = r.choice(
        [
            f"set a timer for {minutes} minutes for the {label}",
            f"{minutes} min timer ({label})",
            f"Remind me in {minutes} minutes that the {label} is done",
        ]
    )
    return {
        "tools": [TOOLS[3], TOOLS[1]],
        "user": user,
        "call": call("set_timer", {"seconds": minutes * 60, "label": label}),
        "result": {"status": "running", "ends_in_s": minutes * 60},
        "final": f"Timer set: {minutes} minutes for the {label}.",
    }


def tool_contact(r: random.Random) -> dict:
    name = person(r)
    phone = f"+{r.randint(30, 49)} {r.randint(100, 999)} {r.randint(1000000, 9999999)}"
    user = r.choice(
        [
            f"whats {name.split()[0]}'s number",
            f"Find {name} in my contacts",
            f"do I have an email for {name}?",
        ]
    )
    email = f"{name.split()[0].lower()}.{name.split()[1].lower()}@example.net"
    return {
        "tools": [TOOLS[4]],
        "user": user,
        "call": call("find_contact", {"query": name.split()[0] if "'s" in user else name}),
        "result": {"matches": [{"name": name, "phone": phone, "email": email}]},
        "final": f"{name}: phone {phone}, email {email}.",
    }


EXTRACT_SCHEMA = {
    "type": "object",
    "properties": {
        "customer": {"type": "string"},
        "product": {"type": "string"},
        "quantity": {"type": "integer"},
        "unit_price": {"type": "number"},
        "deliver_to": {"type": "string"},
        "deliver_by": {"type": ["string", "null"]},
        "gift_wrap": {"type": "boolean"},
    },
    "required": ["customer", "product", "quantity", "deliver_to"],
}


def extraction(r: random.Random) -> dict:
    name, city = person(r), r.choice(CITIES)
    product, price = r.choice(PRODUCTS)
    qty = r.randint(1, 4)
    iso, human = date(r)
    has_date, gift = r.random() < 0.6, r.random() < 0.3
    text = r.choice(
        [
            f"Hi, this is {name}. I'd like {qty} x {product} ({price} each) shipped to {city}"
            + (f" before {human}" if has_date else "")
            + (". Could you gift wrap it?" if gift else ". Thanks!"),
            f"order from {name.lower()}: {qty} {product}s @ {price}, adress {city}"
            + (f", need it by {human}" if has_date else "")
            + (", giftwrap yes" if gift else ""),
            f"Please send {qty} of the {product} to {name} in {city}."
            + (f" Deadline: {human}." if has_date else "")
            + (" It's a present." if gift else ""),
        ]
    )
    out = {
        "customer": name,
        "product": product,
        "quantity": qty,
        "unit_price": price,
        "deliver_to": city,
        "deliver_by": iso if has_date else None,
        "gift_wrap": gift,
    }
    system = "Extract the order from the message. Reply with JSON only, matching this schema:\n" + json.dumps(
        EXTRACT_SCHEMA
    )
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": text},
            {"role": "assistant", "content": json.dumps(out, ensure_ascii=False)},
        ]
    }


INTENTS = {
    "cancel_subscription": [
        "I want to stop paying for this every month",
        "how do i cancel my plan",
        "Please end my membership at the end of the billing period",
    ],
    "report_bug": [
        "the app crashes when i open the camera tab",
        "Export to CSV gives an empty file",
        "Dark mode makes the buttons invisible on my tablet",
    ],
    "billing_question": [
        "why was I charged twice in March?",
        "Can I get an invoice with my VAT number",
        "the price went up without warning??",
    ],
    "feature_request": [
        "would be great if I could share lists with my partner",
        "Please add a widget for the home screen",
        "any plans for offline maps?",
    ],
    "other": ["hello?", "Who made this app", "is anyone reading these messages"],
}


def classify(r: random.Random) -> dict:
    intent = r.choice(list(INTENTS))
    text = r.choice(INTENTS[intent])
    conf = round(r.uniform(0.55, 0.98), 2)
    system = (
        'Classify the support message. Reply with JSON only: {"intent": one of '
        + json.dumps(list(INTENTS))
        + ', "confidence": number between 0 and 1, "reply_needed": boolean}'
    )
    out = {"intent": intent, "confidence": conf, "reply_needed": intent != "other" or r.random() < 0.5}
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": text},
            {"role": "assistant", "content": json.dumps(out)},
        ]
    }


def tool_chat(r: random.Random) -> dict:
    t = r.choice([tool_forecast, tool_event, tool_currency, tool_timer, tool_contact])(r)
    return {
        "messages": [
            {"role": "system", "content": system_with_tools(t["tools"])},
            {"role": "user", "content": t["user"]},
            {"role": "assistant", "content": t["call"]},
            {"role": "tool", "content": json.dumps(t["result"], ensure_ascii=False)},
            {"role": "assistant", "content": t["final"]},
        ]
    }


def main() -> None:
    r = random.Random(20250301)
    rows = (
        [tool_chat(r) for _ in range(40)]
        + [extraction(r) for _ in range(25)]
        + [classify(r) for _ in range(15)]
    )
    r.shuffle(rows)
    OUT.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows), encoding="utf-8")
    print(f"wrote {len(rows)} conversations to {OUT}")


if __name__ == "__main__":
    main()
