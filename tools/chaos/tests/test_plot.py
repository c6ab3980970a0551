"""plot.svg is well-formed SVG with the fault windows and both panels in it."""

import unittest
import xml.etree.ElementTree as ET

from keelchaos import plot
from keelchaos.checker import analyze

from .test_checker import Unavailability


class Plot(unittest.TestCase):
    def test_svg_parses_and_shows_faults(self):
        a = analyze(Unavailability().history_with_a_leader_kill().events)
        text = plot.svg(a.series, "title & <test>")
        root = ET.fromstring(text)
        self.assertTrue(root.tag.endswith("svg"))
        self.assertIn("fault 1: kill", text)
        self.assertIn("ack latency", text)
        self.assertGreater(text.count("<circle"), 50)

    def test_empty_history_still_draws(self):
        ET.fromstring(plot.svg(analyze([]).series))


if __name__ == "__main__":
    unittest.main()
