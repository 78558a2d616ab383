"""Writes the CLAM/TRIDENT .h5 feature-file fixtures of Transforms/FeatureFileTests (CI reads the committed files).

    /usr/bin/python3 test/MLNet.Attention.Tests/Fixtures/make_h5_fixture.py

Written with h5py as CLAM's save_hdf5 (utils/file_utils.py) writes them: each dataset is created from the first batch
with chunks=(chunk_size, ...) and maxshape=(None, ...), then resized and appended per batch; the coords attributes are
set on creation.

Files:
  clam-features.h5     features float32 [37, 16], coords int64 [37, 2], appended in batches of 16, 16, 5 with
                       chunk_size 8 (so 5 chunks, the last one partial); coords attributes as create_patches_fp.py:
                       patch_size 256, patch_level 0, downsample (1.0, 1.0), downsampled_level_dim (1792, 2560),
                       level_dim (1792, 2560), name 'slide-a', save_path 'patches'.
                       features[i, j] = (16 i + j) / 8 - 3 (exact in float32); coords[i] = (256 (i % 7), 1024 + 256 (i // 7)).
  trident-features.h5  features float32 [5, 3] = (3 i + j) / 4, coords int64 [5, 2] = (512 i, 512 i + 1), one batch,
                       chunk_size 32; coords attributes as TRIDENT: patch_size 256, patch_size_level0 512,
                       level0_magnification 40, target_magnification 20, overlap 0, name 'slide-b', level0_width 4096,
                       level0_height 3072; 'encoder' = 'conch_v15' on the file and on features.
"""
import os

import h5py
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))


def save_hdf5(output_path, asset_dict, attr_dict=None, mode='a', chunk_size=32):
    # CLAM utils/file_utils.py save_hdf5, verbatim apart from formatting.
    with h5py.File(output_path, mode) as file:
        for key, val in asset_dict.items():
            data_shape = val.shape
            if key not in file:
                data_type = val.dtype
                chunk_shape = (chunk_size,) + data_shape[1:]
                maxshape = (None,) + data_shape[1:]
                dset = file.create_dataset(key, shape=data_shape, maxshape=maxshape, chunks=chunk_shape,
                                           dtype=data_type)
                dset[:] = val
                if attr_dict is not None:
                    if key in attr_dict.keys():
                        for attr_key, attr_val in attr_dict[key].items():
                            dset.attrs[attr_key] = attr_val
            else:
                dset = file[key]
                dset.resize(len(dset) + data_shape[0], axis=0)
                dset[-data_shape[0]:] = val
    return output_path


def clam():
    path = os.path.join(here, 'clam-features.h5')
    if os.path.exists(path):
        os.remove(path)
    n, d = 37, 16
    i = np.arange(n)
    features = ((16 * i[:, None] + np.arange(d)[None, :]) / 8.0 - 3.0).astype(np.float32)
    coords = np.stack([256 * (i % 7), 1024 + 256 * (i // 7)], axis=1).astype(np.int64)
    attrs = {'coords': {'patch_size': 256, 'patch_level': 0, 'downsample': (1.0, 1.0),
                        'downsampled_level_dim': (1792, 2560), 'level_dim': (1792, 2560), 'name': 'slide-a',
                        'save_path': 'patches'}}
    mode = 'w'
    for start in range(0, n, 16):
        stop = min(start + 16, n)
        save_hdf5(path, {'features': features[start:stop], 'coords': coords[start:stop]},
                  attr_dict=attrs if mode == 'w' else None, mode=mode, chunk_size=8)
        mode = 'a'


def trident():
    path = os.path.join(here, 'trident-features.h5')
    n, d = 5, 3
    i = np.arange(n)
    features = ((3 * i[:, None] + np.arange(d)[None, :]) / 4.0).astype(np.float32)
    coords = np.stack([512 * i, 512 * i + 1], axis=1).astype(np.int64)
    attrs = {'coords': {'patch_size': 256, 'patch_size_level0': 512, 'level0_magnification': 40,
                        'target_magnification': 20, 'overlap': 0, 'name': 'slide-b', 'level0_width': 4096,
                        'level0_height': 3072},
             'features': {'encoder': 'conch_v15'}}
    save_hdf5(path, {'features': features, 'coords': coords}, attr_dict=attrs, mode='w')
    with h5py.File(path, 'a') as f:
        f.attrs['encoder'] = 'conch_v15'


if __name__ == '__main__':
    clam()
    trident()
