"""The networks: the compact CNN, the ensemble that ships, and training-time augmentation."""
