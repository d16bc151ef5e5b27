"""The textbook building blocks of segmentation networks: upsampling, FCN, U-Net, losses."""
