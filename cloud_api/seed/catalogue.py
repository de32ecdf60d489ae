"""What the synthetic chain is made of: limits, rates, names, categories, products,
customer preferences, arrival-hour profiles and visitor segments."""

from __future__ import annotations

from dataclasses import dataclass

MAX_STORES = 9_999
MAX_DAYS = 3_660
MAX_RECEIPTS = 50_000_000
#: visitors an average store sees on an ordinary day (without `receipts=`)
VISITORS_PER_DAY = 240.0
OPEN_HOUR, CLOSE_HOUR = 8, 21
CURRENCY = "EUR"
BATCH_ROWS = 20_000

CHECKOUT_CAPTURE = 0.76  # receipts whose customer's face is captured at the till
ENTRANCE_RECOGNITION = 0.93  # enrolled customers recognised at the door
STAFF_RECOGNITION = 0.97
CROSS_STORE = 0.06  # visits to another store of the home region
STAFF_WORKDAY = 0.78
STAFF_LUNCH_RETURN = 0.45
STAFF_PURCHASE = 0.12
PROMOTION = 0.07  # line items sold at 20% off
FEMALE_SHARE = 0.54
GENDER_MISREAD = 0.03  # estimated gender wrong
AGE_ERROR_YEARS = 2.5

#: (from, below, share): how the synthetic shoppers' ages are spread
SHOPPER_AGE_MIX: tuple[tuple[int, int, float], ...] = (
    (16, 25, 0.14), (25, 35, 0.20), (35, 45, 0.19), (45, 55, 0.17), (55, 65, 0.14),
    (65, 75, 0.10), (75, 86, 0.06),
)  # fmt: skip

WEEKDAY_FACTOR = (0.86, 0.84, 0.90, 0.96, 1.12, 1.42, 1.12)  # Monday first
CLOSED = ((12, 25), (1, 1))

REGION_NAMES = (
    "North",
    "South",
    "East",
    "West",
    "Central",
    "Coast",
    "Capital",
    "Highlands",
    "Lakes",
    "Valley",
    "Midlands",
    "Islands",
)
TOWNS = (
    "Ashford", "Bramley", "Carlton", "Dunmore", "Eastleigh", "Fairview", "Glenwood",
    "Harrow Hill", "Ivybridge", "Kingsbury", "Lakeside", "Millbrook", "Newhaven", "Oakridge",
    "Parkgate", "Queensway", "Riverside", "Stonebridge", "Thornbury", "Upton", "Westfield",
    "Yarmouth", "Brookside", "Cliffton", "Denholm", "Elmstead", "Foxley", "Greenhill",
    "Hillcrest", "Kirkby", "Longford", "Marston", "Northgate", "Old Town", "Petersfield",
    "Redcliffe", "Southport", "Tamworth", "Victoria Park", "Woodside",
)  # fmt: skip
FIRST_NAMES = {
    "female": (
        "Anna", "Maria", "Sophie", "Emma", "Laura", "Julia", "Clara", "Hannah", "Eva", "Lea",
        "Nina", "Olivia", "Sarah", "Grace", "Alice", "Mia", "Zoe", "Ella", "Ruth", "Helen",
    ),
    "male": (
        "Lucas", "David", "Thomas", "Jonas", "Paul", "Daniel", "Felix", "Samuel", "Noah",
        "Adam", "Oliver", "Leon", "Peter", "Martin", "Simon", "Henry", "Jacob", "Ben", "Max",
        "Victor",
    ),
}  # fmt: skip
LAST_NAMES = (
    "Smith", "Müller", "García", "Rossi", "Novak", "Jansen", "Dubois", "Kowalski", "Silva",
    "Nielsen", "Brown", "Schmidt", "Martin", "Bianchi", "Horvat", "de Vries", "Lambert",
    "Nowak", "Costa", "Larsen", "Taylor", "Fischer", "Moreau", "Ricci", "Kovač", "Bakker",
    "Fontaine", "Wiśniewska", "Pereira", "Berg",
)  # fmt: skip
MEMBER_LEVELS = ("standard", "silver", "gold")

CATEGORIES = (
    "coffee", "tea", "bakery", "dairy", "produce", "sweets", "snacks", "drinks",
    "ready meals", "household", "personal care", "gifts",
)  # fmt: skip
#: (sku, name, category, brand, price); the first products of a category sell best
CATALOGUE: tuple[tuple[str, str, str, str, str], ...] = (
    ("COF-101", "Espresso beans 1kg", "coffee", "Roastery", "18.90"),
    ("COF-102", "Filter coffee 500g", "coffee", "Roastery", "8.50"),
    ("COF-103", "Instant coffee 200g", "coffee", "Morning Cup", "6.20"),
    ("COF-104", "Coffee capsules x10", "coffee", "Capsa", "4.90"),
    ("COF-105", "Decaf ground coffee 250g", "coffee", "Roastery", "5.40"),
    ("TEA-101", "English breakfast tea x80", "tea", "Hillside", "4.50"),
    ("TEA-102", "Green tea x20", "tea", "Leafy", "3.20"),
    ("TEA-103", "Earl Grey loose leaf 125g", "tea", "Hillside", "5.80"),
    ("TEA-104", "Chamomile tea x20", "tea", "Leafy", "2.90"),
    ("TEA-105", "Chai latte mix", "tea", "Spice Route", "4.10"),
    ("BAK-101", "Sourdough loaf", "bakery", "Crumb", "3.90"),
    ("BAK-102", "Butter croissant", "bakery", "Crumb", "1.40"),
    ("BAK-103", "Wholemeal bread", "bakery", "Millers", "2.30"),
    ("BAK-104", "Carrot cake slice", "bakery", "Crumb", "3.20"),
    ("BAK-105", "Cinnamon bun", "bakery", "Crumb", "2.10"),
    ("DAI-101", "Semi-skimmed milk 1l", "dairy", "Valley Farm", "1.15"),
    ("DAI-102", "Oat milk 1l", "dairy", "Oaty", "2.20"),
    ("DAI-103", "Greek yoghurt 500g", "dairy", "Olympia", "2.80"),
    ("DAI-104", "Mature cheddar 400g", "dairy", "Valley Farm", "4.60"),
    ("DAI-105", "Butter 250g", "dairy", "Valley Farm", "2.40"),
    ("PRO-101", "Bananas x6", "produce", "Fresh Fields", "1.30"),
    ("PRO-102", "Apples x6", "produce", "Fresh Fields", "2.40"),
    ("PRO-103", "Cherry tomatoes 500g", "produce", "Fresh Fields", "1.90"),
    ("PRO-104", "Mixed salad bag", "produce", "Green Leaf", "1.60"),
    ("PRO-105", "Avocados x2", "produce", "Fresh Fields", "2.20"),
    ("SWE-101", "Milk chocolate bar", "sweets", "Cacao Co", "1.20"),
    ("SWE-102", "Dark chocolate 100g", "sweets", "Cacao Co", "2.40"),
    ("SWE-103", "Gummy bears 200g", "sweets", "Fruity", "1.80"),
    ("SWE-104", "Biscuit assortment", "sweets", "Biscotto", "3.60"),
    ("SWE-105", "Praline gift box", "sweets", "Cacao Co", "12.90"),
    ("SNA-101", "Sea salt crisps", "snacks", "Crunch", "1.50"),
    ("SNA-102", "Salted nuts 200g", "snacks", "Nutty", "3.30"),
    ("SNA-103", "Protein bar", "snacks", "Fuel", "2.20"),
    ("SNA-104", "Sweet popcorn", "snacks", "Crunch", "1.70"),
    ("SNA-105", "Rice cakes", "snacks", "Lite", "1.40"),
    ("DRI-101", "Sparkling water 1.5l", "drinks", "Clear Spring", "0.90"),
    ("DRI-102", "Orange juice 1l", "drinks", "Sunny", "2.60"),
    ("DRI-103", "Cola 1.5l", "drinks", "Fizz", "1.90"),
    ("DRI-104", "Energy drink 250ml", "drinks", "Volt", "1.60"),
    ("DRI-105", "Peach iced tea 500ml", "drinks", "Leafy", "1.50"),
    ("RDY-101", "Chicken wrap", "ready meals", "Deli Fresh", "3.80"),
    ("RDY-102", "Pasta salad", "ready meals", "Deli Fresh", "3.50"),
    ("RDY-103", "Lasagne for one", "ready meals", "Nonna", "4.20"),
    ("RDY-104", "Sushi box", "ready meals", "Umami", "6.90"),
    ("RDY-105", "Vegetable soup", "ready meals", "Deli Fresh", "2.90"),
    ("HOU-101", "Washing-up liquid", "household", "Sparkle", "1.80"),
    ("HOU-102", "Kitchen roll x2", "household", "Softy", "2.90"),
    ("HOU-103", "Laundry pods x24", "household", "Sparkle", "7.90"),
    ("HOU-104", "Bin bags x20", "household", "Strong", "2.50"),
    ("HOU-105", "Dishwasher tablets x30", "household", "Sparkle", "6.40"),
    ("PER-101", "Toothpaste", "personal care", "Brite", "2.30"),
    ("PER-102", "Shampoo 400ml", "personal care", "Silk", "4.20"),
    ("PER-103", "Deodorant", "personal care", "Fresh Day", "2.90"),
    ("PER-104", "Hand cream", "personal care", "Silk", "3.60"),
    ("PER-105", "Razor blades x4", "personal care", "Edge", "8.90"),
    ("GIF-101", "Greeting card", "gifts", "Papercraft", "2.95"),
    ("GIF-102", "Flower bouquet", "gifts", "Bloom", "8.00"),
    ("GIF-103", "Scented candle", "gifts", "Glow", "9.50"),
    ("GIF-104", "Travel mug", "gifts", "Roastery", "14.00"),
    ("GIF-105", "Gift wrap roll", "gifts", "Papercraft", "3.20"),
)
PRODUCTS_PER_CATEGORY = 5
PRODUCT_POPULARITY = (0.34, 0.24, 0.18, 0.14, 0.10)

#: category preference (rows: ages 16-24, 25-39, 40-59, 60+; columns: CATEGORIES)
AGE_PREFERENCES = (
    (4, 1, 4, 3, 3, 14, 14, 14, 12, 2, 5, 3),
    (11, 3, 7, 7, 9, 6, 7, 8, 12, 6, 7, 4),
    (10, 6, 9, 10, 12, 5, 5, 6, 7, 10, 6, 5),
    (6, 14, 14, 12, 12, 6, 2, 3, 5, 9, 5, 6),
)
GENDER_PREFERENCES = {
    "female": {"personal care": 1.5, "produce": 1.2, "gifts": 1.3, "sweets": 1.1, "tea": 1.1},
    "male": {"snacks": 1.25, "drinks": 1.25, "ready meals": 1.2, "coffee": 1.1},
}
#: month (1-12) -> category -> factor
SEASONAL_CATEGORIES: dict[int, dict[str, float]] = {
    1: {"tea": 1.25, "produce": 1.1, "sweets": 0.8},
    2: {"tea": 1.2, "gifts": 1.4, "sweets": 1.2},
    3: {"tea": 1.1},
    4: {"sweets": 1.25, "gifts": 1.1},
    5: {"gifts": 1.25, "produce": 1.1},
    6: {"drinks": 1.4, "produce": 1.15, "tea": 0.85, "ready meals": 1.1},
    7: {"drinks": 1.6, "produce": 1.2, "tea": 0.8, "snacks": 1.1},
    8: {"drinks": 1.5, "produce": 1.15, "tea": 0.8, "snacks": 1.1},
    9: {"bakery": 1.05},
    10: {"tea": 1.15, "sweets": 1.1},
    11: {"tea": 1.25, "sweets": 1.2, "gifts": 1.3},
    12: {"sweets": 1.7, "gifts": 2.3, "bakery": 1.2, "coffee": 1.15, "tea": 1.2},
}
#: product -> factor for (female, male, under 25, 60 and over)
PRODUCT_AFFINITY: dict[str, tuple[float, float, float, float]] = {
    "PER-105": (0.15, 3.0, 0.8, 0.8),
    "PER-104": (2.5, 0.4, 1.0, 1.5),
    "DRI-104": (0.7, 1.5, 3.0, 0.2),
    "SNA-103": (0.8, 1.8, 1.6, 0.4),
    "SWE-105": (1.2, 0.9, 0.5, 1.8),
    "TEA-104": (1.6, 0.6, 1.0, 1.3),
    "RDY-104": (1.2, 0.9, 1.4, 0.5),
    "DAI-102": (1.4, 0.7, 1.6, 0.6),
    "COF-104": (1.0, 1.0, 1.3, 0.6),
    "BAK-101": (1.0, 1.0, 0.7, 1.4),
}

#: arrival weights for hours 8..20 (rows: older, working age, young, weekend)
HOUR_PROFILES = (
    (5, 8, 10, 11, 10, 8, 7, 6, 5, 4, 3, 2, 1),
    (2, 3, 3, 5, 9, 8, 4, 4, 6, 10, 10, 7, 3),
    (1, 2, 3, 4, 7, 7, 6, 7, 8, 9, 9, 8, 5),
    (2, 4, 7, 9, 10, 9, 8, 8, 7, 6, 5, 4, 2),
)
WEEKEND_HOURS_SHARE = 0.6  # weekend arrivals: this much the weekend profile, the rest own


@dataclass(frozen=True)
class _Segment:
    name: str
    share: float  # of all visits
    rate: float  # mean visits a day, on a day of ordinary traffic
    rate_shape: float  # gamma shape of the rate across people
    from_start: float  # share already shopping here on the first day
    lifetime_days: float  # mean time until they drift away
    buy: float  # mean chance of buying on a visit
    member: float  # chance that a customer joins the VIP programme


SEGMENTS = (
    _Segment("loyal", 0.50, 0.16, 3.0, 0.70, 700.0, 0.44, 0.32),
    _Segment("regular", 0.28, 0.045, 2.0, 0.55, 400.0, 0.36, 0.12),
    _Segment("occasional", 0.14, 0.014, 2.0, 0.45, 300.0, 0.30, 0.04),
)
ONE_OFF = _Segment("one-off", 0.08, 0.0, 1.0, 0.0, 0.0, 0.26, 0.01)
BUY_SHARE = sum(s.share * s.buy for s in (*SEGMENTS, ONE_OFF))
