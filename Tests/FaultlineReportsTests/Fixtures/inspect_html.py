#!/usr/bin/env python3
"""Parses an HTML report with html5lib (a spec-conforming HTML5 parser) and prints, as JSON, what
the Swift tests check: parse errors, anything that points outside the file, and every inline SVG
chart with the section it belongs to and its fault bands.

    inspect_html.py REPORT.html
"""
import json
import re
import sys

import html5lib

SVG = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
# Attributes that load or link to something.
URL_ATTRIBUTES = {"src", "href", XLINK_HREF, "action", "formaction", "poster", "srcset", "data", "background", "manifest", "ping", "longdesc"}
# Elements that fetch or run something by their nature.
EXTERNAL_ELEMENTS = {"script", "link", "iframe", "frame", "object", "embed", "img", "video", "audio", "source", "track", "base", "image"}


def local(tag):
    return tag.split("}", 1)[1] if tag.startswith("{") else tag


def main(path):
    with open(path, "rb") as handle:
        data = handle.read()
    parser = html5lib.HTMLParser(strict=False, namespaceHTMLElements=False)
    root = parser.parse(data)
    errors = [
        {"line": position[0], "column": position[1], "code": code, "details": {k: str(v) for k, v in (details or {}).items()}}
        for position, code, details in parser.errors
    ]

    parents = {child: parent for parent in root.iter() for child in parent}
    external = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        name = local(element.tag)
        if name in EXTERNAL_ELEMENTS:
            external.append({"element": name, "attributes": dict(element.attrib)})
        for attribute, value in element.attrib.items():
            if attribute in URL_ATTRIBUTES and not (value.startswith("#") or value.startswith("data:")):
                external.append({"element": name, "attribute": attribute, "value": value})
            if attribute == "style" and re.search(r"url\(|@import", value):
                external.append({"element": name, "attribute": "style", "value": value})
            if attribute.startswith("on"):
                external.append({"element": name, "attribute": attribute, "value": "event handler"})
        if name == "style":
            for match in re.finditer(r"@import[^;]*|url\(\s*['\"]?([^'\")]*)", element.text or ""):
                target = match.group(1) or ""
                if match.group(0).startswith("@import") or not (target.startswith("#") or target.startswith("data:")):
                    external.append({"element": "style", "value": match.group(0)})

    def enclosing(element, tag):
        current = parents.get(element)
        while current is not None:
            if local(current.tag) == tag and current.get("id"):
                return current.get("id")
            current = parents.get(current)
        return None

    charts = []
    for svg in root.iter(SVG + "svg"):
        faults = []
        for group in svg.iter(SVG + "g"):
            if "fault" not in (group.get("class") or "").split():
                continue
            band = next(r for r in group.iter(SVG + "rect") if "fault-band" in (r.get("class") or "").split())
            label = next((t for t in group.iter(SVG + "text") if "fault-label" in (t.get("class") or "").split()), None)
            faults.append({
                "id": group.get("data-fault"),
                "x": float(band.get("x")),
                "width": float(band.get("width")),
                "label": "".join(label.itertext()) if label is not None else None,
            })
        charts.append({
            "chart": svg.get("data-chart"),
            "article": enclosing(svg, "article"),
            "section": enclosing(svg, "section"),
            "viewBox": svg.get("viewBox"),
            "label": svg.get("aria-label"),
            "shapes": sum(1 for e in svg.iter() if local(e.tag) in ("rect", "polyline", "polygon", "circle", "line")),
            "faults": faults,
        })

    title = root.find(".//title")
    print(json.dumps({
        "errors": errors,
        "external": external,
        "title": title.text if title is not None else None,
        "charts": charts,
        "text": " ".join("".join(root.find(".//body").itertext()).split()),
    }, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
