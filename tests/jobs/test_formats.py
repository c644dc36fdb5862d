"""One formatter per kind of number: the same value reads the same in the report, the model card, the
recommendation, the search table and the terminal."""
from compress.jobs import formats as fmt


def test_each_kind_of_number_has_one_spelling():
    assert (fmt.pct(0.84551), fmt.pct(None)) == ("84.55", "–")
    assert (fmt.points(0.0055), fmt.points(-0.0004), fmt.points(None)) == ("+0.55", "-0.04", "–")
    assert (fmt.ms(0.70449), fmt.ms(12.345), fmt.ms(None)) == ("0.704", "12.3", "–")
    assert fmt.band(0.6149, 0.8351) == "0.615–0.835"  # the report's table printed this band as 0.61–0.84 (.2g)
    assert fmt.estimate({"ms": 0.7045, "low_ms": 0.6149, "high_ms": 0.8351}) == "0.705 (0.615–0.835)"
    assert (fmt.num(2**21, 2**20, 2), fmt.num(123456789, 1e9, 4), fmt.num(None)) == ("2.00", "0.1235", "–")


def test_the_report_recommendation_and_search_table_use_them():
    from compress.jobs.recommend import Recommendation

    r = Recommendation("orin", "kd", "int8 (trt)", 0.84551, 0.70449, (0.6149, 0.8351), None, True, "why")
    assert "84.55 % OA, 0.704 ms (ESTIMATED, 0.615–0.835)" in r.line()
