import json
import time
from mproc import Process,Lock

def search_ticket(name):
    '''
    查票功能
    :param name: 进程对象
    :return:
    '''
    with open('ticket')as f:
        ticket_dic = json.load(f)
    time.sleep(0.1)
    print('%s : 当前余票%s张'%(name,ticket_dic['count']))

def buy_ticket(name):
    '''
    买票功能
    :param name: 进程对象
    :return:
    '''
    with open('ticket')as f:
        ticket_dic = json.load(f)
    time.sleep(0.1)
    if ticket_dic['count'] > 0:
        print('%s查询余票%s张'%(name,ticket_dic['count']))
        ticket_dic['count'] -= 1
        print('%s购票成功'%name)
    time.sleep(0.1)
    with open('ticket','w')as f:
        json.dump(ticket_dic,f)

# def use_system(name,lock):
#     search_ticket(name)
#     lock.acquire()         #上锁
#     buy_ticket(name)
#     lock.release()         #解锁

def use_system(name,lock):
    '''
    进程锁
    :param name: 进程对象
    :param lock: 进程锁
    :return:
    '''
    search_ticket(name)
    with lock:             # 使用上下文管理会更好
        buy_ticket(name)

if __name__ == '__main__':
    lock = Lock()          #进程锁
    for i in range(10):   #创建10个进程对象
        p = Process(target=use_system,args=('alex'+str(i),lock))
        p.start()

