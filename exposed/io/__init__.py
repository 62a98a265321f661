"""Files in and out: raws, photos, EXIF, images, DNGs, model files; every write atomic."""
