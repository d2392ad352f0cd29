#!/usr/bin/env python3
"""Derive the compact place and tour tables that `boxoffice seed` embeds.

Reads the openly licensed source files (see crates/boxoffice/data/NOTICE.md) and writes:
  places.tsv  one row per US place (first ZIP of the place): zip, place, state, lat, lon
  cities.tsv  world cities outside the US with at least 300k people: city, country, lat, lon
  tours.tsv   one row per (artist, tour, venue): artist, tour, venue, city, country (ISO), zip,
              lat, lon
              US venues get the ZIP and coordinates of the matching place when one exists.

Usage: python3 scripts/build-catalog-data.py ../shared/data crates/boxoffice/data
"""
import csv
import math
import sys
from pathlib import Path

src, out = Path(sys.argv[1]), Path(sys.argv[2])

places = {}
by_city = {}
with open(src / "us-zips/us_zips.csv", newline="") as f:
    for r in csv.DictReader(f):
        state = r["admin_code1"].strip()
        if not state or not r["latitude"]:
            continue  # military APO/FPO rows
        key = (r["place_name"], state)
        row = (r["postal_code"], r["place_name"], state, float(r["latitude"]), float(r["longitude"]))
        if key not in places or row[0] < places[key][0]:
            places[key] = row
        by_city.setdefault(r["place_name"].lower(), []).append(row)

with open(out / "places.tsv", "w") as f:
    for row in sorted(places.values()):
        f.write("%s\t%s\t%s\t%.4f\t%.4f\n" % row)

with open(src / "world-cities/cities15000_slim.csv", newline="") as f, open(out / "cities.tsv", "w") as o:
    rows = [r for r in csv.DictReader(f) if r["country_code"] != "US" and int(r["population"] or 0) >= 300_000]
    for r in sorted(rows, key=lambda r: (r["country_code"], r["asciiname"])):
        o.write("%s\t%s\t%.4f\t%.4f\n" % (r["asciiname"], r["country_code"], float(r["latitude"]), float(r["longitude"])))

# Country names as the tour file writes them, to ISO 3166-1 alpha-2.
ISO = {
    "United States": "US", "Germany": "DE", "Canada": "CA", "Australia": "AU", "England": "GB",
    "France": "FR", "Spain": "ES", "Italy": "IT", "Netherlands": "NL", "Japan": "JP", "Sweden": "SE",
    "Brazil": "BR", "Switzerland": "CH", "Ireland": "IE", "Denmark": "DK", "Belgium": "BE",
    "New Zealand": "NZ", "Mexico": "MX", "Austria": "AT", "Scotland": "GB", "Poland": "PL",
    "Norway": "NO", "Portugal": "PT", "Argentina": "AR", "Wales": "GB", "Finland": "FI", "Chile": "CL",
    "Czech Republic": "CZ", "South Africa": "ZA", "Hungary": "HU", "Singapore": "SG", "Russia": "RU",
    "Colombia": "CO", "Thailand": "TH", "Romania": "RO", "Greece": "GR", "Taiwan": "TW", "Peru": "PE",
    "Northern Ireland": "GB", "Philippines": "PH", "Malaysia": "MY", "South Korea": "KR",
    "Serbia": "RS", "Hong Kong": "HK", "Estonia": "EE", "Croatia": "HR", "Costa Rica": "CR",
    "United Arab Emirates": "AE", "Turkey": "TR", "Puerto Rico": "PR", "Israel": "IL", "India": "IN",
    "Indonesia": "ID", "China": "CN", "Bulgaria": "BG", "Macau": "MO", "Luxembourg": "LU",
    "Ecuador": "EC", "Uruguay": "UY", "Montenegro": "ME", "Monaco": "MC", "Iceland": "IS",
    "Guatemala": "GT", "Dominican Republic": "DO", "Tunisia": "TN", "Slovenia": "SI",
    "Slovakia": "SK", "Paraguay": "PY", "Panama": "PA", "Morocco": "MA", "Malta": "MT",
    "Lithuania": "LT", "Latvia": "LV", "Honduras": "HN", "El Salvador": "SV", "Cyprus": "CY",
    "Brunei": "BN", "Bosnia and Herzegovina": "BA", "Bahrain": "BH",
}
zips_per_place = {}
for rows in by_city.values():
    for p in rows:
        zips_per_place[(p[1], p[2])] = zips_per_place.get((p[1], p[2]), 0) + 1

def dist(a, b):
    return math.hypot(a[0] - b[0], a[1] - b[1])

seen = set()
with open(src / "world-tours/world_tours.csv", newline="") as f, open(out / "tours.tsv", "w") as o:
    for r in csv.DictReader(f):
        artist, tour, venue, city, country = (r["Artist"].strip(), r["Tour title"].strip(), r["Venue"].strip(), r["City"].strip(), r["Country"].strip())
        if not artist or not venue or not city or not r["Latitude"]:
            continue
        key = (artist, tour, venue, city)
        if key in seen:
            continue
        seen.add(key)
        lat, lon, zipc = float(r["Latitude"]), float(r["Longitude"]), ""
        if country == "United States":
            cands = by_city.get(city.lower())
            if not cands:
                continue  # cannot place it reliably
            # The tour coordinates are city-level and sometimes wrong (the US centroid), so
            # prefer the place with the most ZIP codes (the big city of that name), then the
            # one nearest to the given coordinates; its first ZIP stands for the venue.
            best = max(cands, key=lambda p: (zips_per_place[(p[1], p[2])], -dist((p[3], p[4]), (lat, lon))))
            first = places[(best[1], best[2])]
            zipc, lat, lon = first[0], first[3], first[4]
        if country not in ISO:
            continue
        clean = lambda s: s.replace("\t", " ").replace("\n", " ")
        o.write("%s\t%s\t%s\t%s\t%s\t%s\t%.4f\t%.4f\n" % (clean(artist), clean(tour), clean(venue), clean(city), ISO[country], zipc, lat, lon))
