import sys,os,re
root=sys.argv[1]
item=re.compile(r'^\s*pub (?:async fn|fn|struct|enum|const|static|trait|type) +(\w+)')
outside=''
for d in ('tests','benches'):
    for dp,dn,fn in os.walk(os.path.join(root,d)):
        if 'node_modules' in dp: continue
        for f in fn:
            if f.endswith('.rs'): outside+=open(os.path.join(dp,f)).read()
outside+=open(os.path.join(root,'src/main.rs')).read()
tot=0;could=[]
for dp,dn,fn in os.walk(os.path.join(root,'src')):
    if '/sandbox' in dp: continue
    for f in fn:
        if not f.endswith('.rs') or f=='main.rs': continue
        p=os.path.join(dp,f)
        for i,l in enumerate(open(p),1):
            m=item.match(l)
            if m:
                tot+=1
                if not re.search(r'\b'+m.group(1)+r'\b',outside): could.append(f'{os.path.relpath(p,root)}:{i} {m.group(1)}')
print(f'pub items (fn/struct/enum/const/static/trait/type) in src outside sandbox: {tot}; name never used in tests/, benches/ or main.rs: {len(could)}')
if '-v' in sys.argv: print('\n'.join(could))
