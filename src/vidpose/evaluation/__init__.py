"""The evaluation of a split: a method's validation (and test) step ``add``s each batch's
predictions to a split evaluator; at the epoch's end ``finish`` gathers every process's
predictions (``gather_all``), keeps each sample once, scores them and writes the result files
that ``vidpose eval`` reads back to the same numbers.

``split.py``: ``gather_all``, ``split_data``, the ``SplitEvaluator`` base; ``crop_poses.py``:
top-down poses from crops; ``boxes.py``: person boxes and their box AP; ``scoring.py``:
PoseTrack mAP/MOTA or COCO AP of a split's poses, and their files.
"""
