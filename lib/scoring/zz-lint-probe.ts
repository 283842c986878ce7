console.log('x'); console.warn('y');
