import { Readable } from 'node:stream';
import { z } from 'zod';
import { dataPaths } from '../domain/config';
import { NotFoundError, parseInput } from '../domain/errors';
import { importImageRequestSchema } from '../domain/requests';
import { importImageStream, listImages } from '../inventory/images';
import type { ImageDoc } from '../inventory/schemas';
import { allowed, type Actor } from '../domain/access';
import { authorize } from './auth';
import { HttpError } from './http-errors';
import { pathId, route, type ApiDeps, type ApiRoute } from './route';

/** The largest image an upload may send: a cloud image is a few GiB, a full disk image more. */
export const MAX_IMAGE_BYTES = 64 * 1024 ** 3;

/** What an upload says of the image besides its bytes, in its query (the body is the image). */
const uploadQuery = importImageRequestSchema
  .pick({ format: true, firmware: true, osFamily: true, project: true })
  .extend({ guestAgent: z.enum(['true', 'false']).optional() })
  .strict();

/** A fleet image is any caller's to see; a project's image, its readers'. */
const visible = (actor: Actor, i: ImageDoc) => !i.project || allowed(actor, 'read', i.project);

const imageView = (i: ImageDoc) => ({
  name: i._id,
  format: i.format,
  sourceFormat: i.sourceFormat,
  firmware: i.firmware,
  guestAgent: i.guestAgent,
  osFamily: i.osFamily,
  project: i.project ?? null,
  virtualSizeBytes: i.virtualSizeBytes,
  actualSizeBytes: i.actualSizeBytes,
  sha256: i.sha256,
  createdAt: i.createdAt,
});

/**
 * The image repository: the fleet's images, which every project uses, and a project's own, which
 * only its VMs are made from and only its readers see. A fleet admin uploads the fleet's; a
 * project's admin uploads its own. An upload streams into the repository's private staging file and is imported exactly as
 * `image import` imports a file: inspected, converted to a standalone qcow2, checked again, and
 * stored only if every check passed. The bytes never pass through memory whole.
 */
export function imageRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      url: '/v1/images',
      summary: "The image repository: the fleet's images and those of the caller's projects (any grant)",
      status: 200,
      async handle({ actor }) {
        authorize(actor, 'read');
        return (await listImages(deps.inv)).filter((i) => visible(actor, i)).map(imageView);
      },
    }),
    route({
      method: 'GET',
      url: '/v1/images/:name',
      summary: "One image: a fleet image, or one of the caller's projects' (any grant there)",
      status: 200,
      async handle({ actor, params }) {
        authorize(actor, 'read');
        const name = pathId(params, 'name');
        const image = await deps.inv.images.findOne({ _id: name });
        if (!image || !visible(actor, image)) throw new NotFoundError('image', name);
        return imageView(image);
      },
    }),
    route({
      method: 'PUT',
      url: '/v1/images/:name',
      summary:
        'Upload an image: the body is the file (application/octet-stream); ?format=, ?firmware=, ' +
        "?guestAgent=, ?osFamily= as `image import` takes them; ?project= makes it that project's " +
        "(its admin's to upload), else it is the fleet's (fleet admin)",
      status: 201,
      async handle({ actor, params, req }) {
        const name = pathId(params, 'name');
        const q = parseInput(uploadQuery, req.query, 'query');
        authorize(actor, 'administer', q.project);
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
