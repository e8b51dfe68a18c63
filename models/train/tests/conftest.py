import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(TRAIN))
sys.path.insert(0, TRAIN)
DATA = os.environ.get("RADIOGRAPHS", os.path.join(os.path.dirname(REPO), "shared", "data", "radiographs"))
MODEL_DIR = os.path.join(REPO, "models", "bodypart")
FIXTURES = os.path.join(REPO, "tests", "fixtures", "preprocess")
