// Every workflow the controller worker runs; the bundler starts here.
export { checkHost } from './check-host';
