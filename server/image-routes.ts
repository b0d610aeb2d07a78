import { Readable } from 'node:stream';
import { z } from 'zod';
import { dataPaths } from '../domain/config';
import { parseInput } from '../domain/errors';
import { importImageRequestSchema } from '../domain/requests';
import { importImageStream, listImages } from '../inventory/images';
import type { ImageDoc } from '../inventory/schemas';
import { authorize } from './auth';
import { HttpError } from './http-errors';
import { pathId, route, type ApiDeps, type ApiRoute } from './route';

/** The largest image an upload may send: a cloud image is a few GiB, a full disk image more. */
export const MAX_IMAGE_BYTES = 64 * 1024 ** 3;

/** What an upload says of the image besides its bytes, in its query (the body is the image). */
const uploadQuery = importImageRequestSchema
  .pick({ format: true, firmware: true, osFamily: true })
  .extend({ guestAgent: z.enum(['true', 'false']).optional() })
  .strict();

const imageView = (i: ImageDoc) => ({
  name: i._id,
  format: i.format,
  sourceFormat: i.sourceFormat,
  firmware: i.firmware,
  guestAgent: i.guestAgent,
  osFamily: i.osFamily,
  virtualSizeBytes: i.virtualSizeBytes,
  actualSizeBytes: i.actualSizeBytes,
  sha256: i.sha256,
  createdAt: i.createdAt,
});

/**
 * The image repository: any grant lists it (a create names an image); a fleet admin uploads
 * one. An upload streams into the repository's private staging file and is imported exactly as
 * `image import` imports a file: inspected, converted to a standalone qcow2, checked again, and
 * stored only if every check passed. The bytes never pass through memory whole.
 */
export function imageRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      url: '/v1/images',
      summary: 'The image repository (any grant)',
      status: 200,
      async handle({ actor }) {
        authorize(actor, 'read');
        return (await listImages(deps.inv)).map(imageView);
      },
    }),
    route({
      method: 'PUT',
      url: '/v1/images/:name',
      summary:
        'Upload an image: the body is the file (application/octet-stream); ?format=, ?firmware=, ' +
        '?guestAgent=, ?osFamily= as `image import` takes them (fleet admin)',
      status: 201,
      async handle({ actor, params, req }) {
        authorize(actor, 'administer');
        const name = pathId(params, 'name');
        const q = parseInput(uploadQuery, req.query, 'query');
        if (!(req.body instanceof Readable))
          throw new HttpError(415, 'UnsupportedMediaType', 'an image is sent as application/octet-stream');
        const image = await importImageStream(
          deps.inv,
          dataPaths(deps.config.dataDir).images,
          {
            ...q,
            name,
            guestAgent: q.guestAgent === undefined ? undefined : q.guestAgent === 'true',
            maxVirtualSizeBytes: deps.config.images.maxVirtualSizeBytes,
          },
          `upload:${name}`,
          req.body,
          MAX_IMAGE_BYTES,
        );
        return imageView(image);
      },
    }),
  ];
}
