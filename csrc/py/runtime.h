/* The settings runtime.c's functions change and other boundary files read. */
#ifndef WT_PY_RUNTIME_H
#define WT_PY_RUNTIME_H

/* Whether 3x3 stride-1 convolutions may take the Winograd path. set_winograd changes it
 * under the GIL, and each conv call reads it once into its conv2d_shape, so a workspace
 * sized for one path is never used by the other. */
int winograd_enabled(void);

#endif
