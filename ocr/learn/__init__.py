"""`formc template learn`: a template proposed from one scan or photo of a form page, with no template given.

page.py finds the page (corner markers and page tag, or a flat scan's own pixels), boxes.py the printed digit
boxes on the rectified page, fields.py groups them into fields in reading order and proposes ids and rules
(labels.py reads the printed labels with Tesseract), learn.py is the entry point and write.py writes the
template file and the overlay picture. Geometry is page mm (x right, y down from the page's top-left) unless a
name says px.
"""
