"""Data sets: class-per-folder images (any band count), the embedded digits, splits and transforms."""
from compress.data.bundle import DataBundle, DataConfig, build_data
from compress.data.folder import DIGITS, ImageSource, load_digits_source, scan_folder
from compress.data.split import Split, load_split, stratified_split
from compress.data.transforms import AugmentConfig

__all__ = ["AugmentConfig", "DIGITS", "DataBundle", "DataConfig", "ImageSource", "Split", "build_data",
           "load_digits_source", "load_split", "scan_folder", "stratified_split"]
