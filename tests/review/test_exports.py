"""What reviewers export: the labels a corrected field's boxes get for retraining."""

from ocr.review.exports import box_labels


def test_box_labels_for_a_correction():
    assert box_labels(171, ["blank", "1", "8", "1"]) == ["blank", "1", "7", "1"]
    assert box_labels(71, ["X", "7", "7", "1"]) == ["X", "?", "7", "1"]  # the box read 7 is unknown now
    assert box_labels(None, ["1", "2"]) == ["?", "?"]
